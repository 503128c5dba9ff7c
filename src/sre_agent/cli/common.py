"""Shared CLI helpers: load settings with a one-line error instead of a traceback."""

from __future__ import annotations

import sys

from pydantic import ValidationError

from sre_agent.config import Settings


def fail(message: str, code: int = 2) -> int:
    print(f"sre-agent: {message}", file=sys.stderr)
    return code


def settings_for_database(args: object) -> Settings | None:
    """Settings with ``--database-url`` (when given) in place of SRE_AGENT_DATABASE_URL."""
    url = getattr(args, "database_url", None)
    return load_settings(**({"database_url": url} if url else {}))


def load_settings(**overrides: object) -> Settings | None:
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        msg = str(first["msg"]).removeprefix("Value error, ")
        fail(f"invalid configuration: {where + ': ' if where else ''}{msg}")
        return None
