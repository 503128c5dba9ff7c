"""The parallel test run's serial groups cover every test file that shares the Docker engine or
the real model (tests/support/xdist_groups.py): a new such file left out would run beside the
others and see their containers, or start a second model server."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.xdist_groups import scope_of

ROOT = Path(__file__).resolve().parents[2]
DOCKER = re.compile(r"require_docker|docker_client|ContainerJanitor|docker_available|janitor")
MODEL = re.compile(r"\breal_llm\b")


def test_files_that_use_the_docker_engine_or_the_model_run_in_their_group() -> None:
    checked = 0
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        rel = path.relative_to(ROOT).as_posix()
        if path == Path(__file__).resolve():
            continue
        text = path.read_text()
        if DOCKER.search(text):
            assert scope_of(f"{rel}::t") == "group:docker_engine", rel
            checked += 1
        elif MODEL.search(text):
            assert scope_of(f"{rel}::t") == "group:real_llm", rel
            checked += 1
    assert checked >= 10


def test_other_files_are_scheduled_by_file() -> None:
    assert scope_of("tests/unit/test_rules.py::test_x[a::b]") == "tests/unit/test_rules.py"
    assert scope_of("tests/e2e/test_loop.py::test_crash") == "group:docker_engine"
    # The browser tests serve the agent on fake backends: no Docker, scheduled by file.
    browser = "tests/e2e/test_dashboard_browser.py"
    assert scope_of(f"{browser}::test_login") == browser
