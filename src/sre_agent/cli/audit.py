"""``sre-agent audit verify``: walk the hash chain; exit 1 naming the first bad seq."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from sre_agent.cli.common import fail, settings_for_database


def register(sub: Any) -> None:
    p = sub.add_parser("audit", help="audit trail tools")
    asub = p.add_subparsers(dest="audit_command", required=True)
    v = asub.add_parser("verify", help="verify the event log's hash chain")
    v.add_argument("--database-url", help="overrides SRE_AGENT_DATABASE_URL")
    v.set_defaults(func=verify)
    r = asub.add_parser("rebuild", help="rebuild the projections from the event log")
    r.add_argument("--database-url", help="overrides SRE_AGENT_DATABASE_URL")
    r.set_defaults(func=rebuild)


def _store(args: argparse.Namespace) -> Any:
    settings = settings_for_database(args)
    if settings is None:
        return None
    from sre_agent.store.sql import SqlEventStore

    return SqlEventStore(settings.database_url)


def verify(args: argparse.Namespace) -> int:
    store = _store(args)
    if store is None:
        return 2

    async def go() -> int:
        try:
            result = await store.verify()
        finally:
            await store.close()
        if result.ok:
            print(f"audit chain intact: {result.checked} events verified")
            return 0
        brk = result.first_break
        return fail(f"audit chain broken at seq {brk.seq}: {brk.reason} "
                    f"({result.checked} events verified before it)", 1)

    return asyncio.run(go())


def rebuild(args: argparse.Namespace) -> int:
    store = _store(args)
    if store is None:
        return 2

    async def go() -> int:
        try:
            count = await store.rebuild_projections()
        finally:
            await store.close()
        print(f"projections rebuilt from {count} events")
        return 0

    return asyncio.run(go())
