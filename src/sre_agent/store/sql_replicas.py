"""Replica heartbeats on SQLAlchemy Core: who runs against this database, and since when.

Every ``sre-agent serve`` process upserts its row every ``heartbeat_s`` and deletes it on a
clean stop, so a row whose heartbeat stopped moving is a process that died (its leases run out
after their TTL). Rows silent for a day are pruned by the next heartbeat of any replica.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from sre_agent.store.schema import replicas

PRUNE_AFTER_S = 86_400.0


class ReplicaQueries:
    """Mixed into SqlEventStore, which provides ``_write``, ``_read`` and ``engine``."""

    _write: Callable[[Callable[[Connection], Any]], Awaitable[Any]]
    _read: Callable[[Callable[[Connection], Any]], Awaitable[Any]]
    engine: Any

    async def heartbeat(self, replica: dict[str, Any], now: float) -> None:
        """Record ``replica`` (id, role, host, pid, version, started_at) as alive at ``now``."""
        dialect = postgresql if self.engine.dialect.name == "postgresql" else sqlite
        values = {**{k: replica[k] for k in ("id", "role", "host", "pid", "version",
                                              "started_at")}, "heartbeat_at": now}

        def run(conn: Connection) -> None:
            stmt = dialect.insert(replicas).values(**values)
            conn.execute(stmt.on_conflict_do_update(
                index_elements=[replicas.c.id],
                set_={"role": stmt.excluded.role, "heartbeat_at": stmt.excluded.heartbeat_at}))
            conn.execute(delete(replicas).where(replicas.c.heartbeat_at < now - PRUNE_AFTER_S))
        await self._write(run)

    async def forget_replica(self, replica_id: str) -> None:
        def run(conn: Connection) -> None:
            conn.execute(delete(replicas).where(replicas.c.id == replica_id))
        await self._write(run)

    async def list_replicas(self) -> list[dict[str, Any]]:
        """Every recorded replica, oldest first."""
        def run(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(select(replicas).order_by(replicas.c.started_at,
                                                          replicas.c.id)).mappings().all()
            return [dict(r) for r in rows]
        result: list[dict[str, Any]] = await self._read(run)
        return result
