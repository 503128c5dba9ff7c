"""``sre-agent db upgrade|status``: the store's versioned schema (store/migrations.py).

The server also upgrades at start-up; run ``db upgrade`` first when several replicas share one
PostgreSQL database and you want the upgrade to happen once, before any of them starts.
"""

from __future__ import annotations

import argparse
from typing import Any

from sre_agent.cli.common import fail, settings_for_database


def register(sub: Any) -> None:
    p = sub.add_parser("db", help="database schema tools")
    dsub = p.add_subparsers(dest="db_command", required=True)
    u = dsub.add_parser("upgrade", help="apply pending schema migrations")
    u.add_argument("--database-url", help="overrides SRE_AGENT_DATABASE_URL")
    u.set_defaults(func=upgrade)
    s = dsub.add_parser("status", help="show the schema version")
    s.add_argument("--database-url", help="overrides SRE_AGENT_DATABASE_URL")
    s.set_defaults(func=status)


def _engine(args: argparse.Namespace) -> Any:
    settings = settings_for_database(args)
    if settings is None:
        return None
    from sre_agent.store.engine import make_engine

    return make_engine(settings.database_url)


def upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from sre_agent.store import migrations

    engine = _engine(args)
    if engine is None:
        return 2
    try:
        applied = migrations.upgrade(engine)
    except migrations.SchemaTooNew as exc:
        return fail(str(exc), 1)
    except SQLAlchemyError as exc:
        return fail(f"cannot upgrade the database: {str(exc).splitlines()[0][:200]}", 1)
    finally:
        engine.dispose()
    if applied:
        print(f"upgraded to version {applied[-1]} (applied {', '.join(map(str, applied))})")
    else:
        print(f"already at version {migrations.LATEST}: nothing to do")
    return 0


def status(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from sre_agent.store import migrations

    engine = _engine(args)
    if engine is None:
        return 2
    try:
        with engine.connect() as conn:
            version = migrations.current_version(conn)
    except SQLAlchemyError as exc:
        return fail(f"cannot read the database: {str(exc).splitlines()[0][:200]}", 1)
    finally:
        engine.dispose()
    state = ("up to date" if version == migrations.LATEST
             else "newer than this agent" if version > migrations.LATEST
             else f"{migrations.LATEST - version} migration(s) pending")
    print(f"schema version {version} of {migrations.LATEST}: {state}")
    return 0
