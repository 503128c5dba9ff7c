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

## Lint, type-check and run the whole test suite in three phases (tests/support/xdist_groups.py):
## 1. what shares nothing, on TEST_WORKERS pytest-xdist workers; 2. the Docker-engine tests one
## after another, beside the real-model tests one after another; 3. what must run in-process.
## TEST_WORKERS=0 runs every phase in-process.
TEST_WORKERS ?= 3
SERIAL_WORKERS := $(if $(filter 0,$(TEST_WORKERS)),0,2)
PYTEST := $(BIN)/pytest --dist loadgroup --durations=15
test: install lint
	$(PYTEST) -n $(TEST_WORKERS) -m "not llm_eval and not docker_engine and not real_llm and not in_process"
	$(PYTEST) -n $(SERIAL_WORKERS) -m "docker_engine or real_llm"
	$(PYTEST) -n 0 -m "in_process"

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy src

bench: install
	$(BIN)/python benchmarks/webhook_throughput.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
