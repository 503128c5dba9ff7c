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
