# The two commands of the README: `make run` and `make test`. Both set everything up first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test lint install clean bench

$(BIN)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

## Run the agent on its embedded default: SQLite under ./data, rules only, approval mode,
## 127.0.0.1:8001. Settings come from the environment or .env (see .env.example).
run: install
	$(BIN)/sre-agent serve

## Lint, type-check and run the whole test suite.
test: install lint
	$(BIN)/pytest --durations=25

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

bench: install
	$(BIN)/python benchmarks/webhook_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
