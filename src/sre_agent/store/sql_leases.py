"""Incident leases on SQLAlchemy Core: one replica at a time works on an incident.

A claim is one upsert: insert the lease, or take it over when it ran out or is already ours.
Both SQLite and PostgreSQL do ``INSERT … ON CONFLICT DO UPDATE … WHERE`` atomically, so two
replicas claiming at once cannot both win; ``RETURNING`` says who did (no row: the lease is
someone else's). Expiry is in the replicas' wall clocks (keep them in NTP sync; the TTL is much
longer than any sane skew). The statements are built once (see store/sql.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from sre_agent.store.schema import leases

T = TypeVar("T")


def _claim_statement(dialect: Any) -> Any:
    stmt = dialect.insert(leases).values(
        incident_id=bindparam("incident_id"), owner=bindparam("owner"),
        expires_at=bindparam("expires_at"), claimed_at=bindparam("now"))
    return stmt.on_conflict_do_update(
        index_elements=[leases.c.incident_id],
        set_={"owner": stmt.excluded.owner, "expires_at": stmt.excluded.expires_at,
              "claimed_at": stmt.excluded.claimed_at},
        where=(leases.c.expires_at < stmt.excluded.claimed_at)
        | (leases.c.owner == stmt.excluded.owner)).returning(leases.c.owner)


_CLAIM = {"postgresql": _claim_statement(postgresql), "sqlite": _claim_statement(sqlite)}
RELEASE_LEASE = delete(leases).where(leases.c.incident_id == bindparam("incident_id"),
                                     leases.c.owner == bindparam("owner"))


class LeaseQueries:
    """Mixed into SqlEventStore, which provides ``_write``, ``_read`` and ``engine``."""

    _write: Callable[[Callable[[Connection], Any]], Awaitable[Any]]
    _read: Callable[[Callable[[Connection], Any]], Awaitable[Any]]
    engine: Any

    async def claim(self, incident_id: str, owner: str, ttl_s: float, now: float) -> bool:
        """Take the incident's lease for ``ttl_s``; False when another owner holds it."""
        stmt = _CLAIM[self.engine.dialect.name]
        values = {"incident_id": incident_id, "owner": owner, "expires_at": now + ttl_s,
                  "now": now}

        def run(conn: Connection) -> bool:
            return conn.execute(stmt, values).first() is not None
        result: bool = await self._write(run)
        return result

    async def renew(self, incident_ids: list[str], owner: str, ttl_s: float,
                    now: float) -> None:
        """Extend the leases ``owner`` still holds (one it lost stays lost)."""
        if not incident_ids:
            return

        def run(conn: Connection) -> None:
            conn.execute(update(leases).where(leases.c.incident_id.in_(incident_ids),
                                              leases.c.owner == owner)
                         .values(expires_at=now + ttl_s))
        await self._write(run)

    async def release(self, incident_id: str, owner: str) -> None:
        key = {"incident_id": incident_id, "owner": owner}
        await self._write(lambda conn: conn.execute(RELEASE_LEASE, key))

    async def list_leases(self, now: float) -> list[dict[str, Any]]:
        """Leases still running, soonest to expire first."""
        def run(conn: Connection) -> list[dict[str, Any]]:
            rows = conn.execute(select(leases).where(leases.c.expires_at >= now)
                                .order_by(leases.c.expires_at)).mappings().all()
            return [dict(r) for r in rows]
        result: list[dict[str, Any]] = await self._read(run)
        return result
