"""Shared fixtures: settings on a temporary SQLite file, an app and an async client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.config import Settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build Settings explicitly; the developer's environment must not leak in."""
    import os

    for key in list(os.environ):
        if key.startswith("SRE_AGENT_"):
            monkeypatch.delenv(key)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under ``--dist loadgroup``, schedule by tests/support/xdist_groups.py's table: the
    tests sharing the Docker engine or the real model one after another, the rest by file.
    (xdist's own ``xdist_group`` marks are lost under pytest 9: it renames node ids through an
    attribute pytest 9 no longer reads.)"""
    if config.getvalue("dist") != "loadgroup":
        return None
    from tests.support.xdist_groups import SerialGroupScheduling

    return SerialGroupScheduling(config, log)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the tests of tests/support/xdist_groups.py's groups (`docker_engine`, `real_llm`)
    and the in-process ones (`in_process`), so that `make test` runs them in their phase."""
    from tests.support.xdist_groups import IN_PROCESS, scope_of

    root = Path(str(config.rootpath))
    for item in items:
        rel = Path(str(item.path)).relative_to(root).as_posix()
        scope = scope_of(rel)
        if scope.startswith("group:"):  # docker_engine, real_llm: the group is the mark
            item.add_marker(scope.removeprefix("group:"))
        elif rel in IN_PROCESS:
            item.add_marker(pytest.mark.in_process)


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    # A short stability window keeps tests quick; the window's own tests set theirs.
    values: dict[str, Any] = {"database_url": f"sqlite:///{tmp_path / 'agent.db'}",
                              "log_format": "console", "verify_stable_s": 2.0, **overrides}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://agent") as c:
        yield c


@pytest.fixture(scope="session")
def pg_cluster() -> Any:
    """One throwaway PostgreSQL cluster per test session (tests/support/postgres.py)."""
    from tests.support.postgres import start_cluster

    yield from start_cluster()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL on each back end: a fresh SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    cluster = request.getfixturevalue("pg_cluster")
    return str(cluster.create_database())
