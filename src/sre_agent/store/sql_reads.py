"""Read queries over the log and the incident projections, mixed into SqlEventStore."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, bindparam, exists, func, select

from sre_agent.domain.events import (
    GENESIS_HASH,
    ChainBreak,
    StoredEvent,
    event_type_of,
    verify_chain,
)
from sre_agent.domain.incident import IncidentStatus
from sre_agent.ports import IncidentPage, IncidentSnapshot, VerifyResult
from sre_agent.store.schema import (
    alerts,
    chain_head,
    control,
    events,
    incidents,
    leases,
    progress,
)

T = TypeVar("T")
MAX_SNAPSHOT_EVENTS = 100_000  # an incident's log as a pipeline run reads it, at most

# The statements of every pipeline run, built once (building one cost more CPU than running it:
# see store/sql.py).
_INCIDENT = select(incidents).where(incidents.c.id == bindparam("incident_id"))
_INCIDENT_ALERTS = (select(alerts).where(alerts.c.incident_id == bindparam("incident_id"))
                    .order_by(alerts.c.id))
_INCIDENT_EVENTS = (select(events).where(events.c.incident_id == bindparam("incident_id"))
                    .order_by(events.c.seq).limit(MAX_SNAPSHOT_EVENTS))
_CONTROL = select(control)


def row_to_event(row: Any) -> StoredEvent:
    return StoredEvent(seq=row.seq, incident_id=row.incident_id, type=event_type_of(row.type),
                       at=row.at, actor=row.actor, data=json.loads(row.data),
                       prev_hash=row.prev_hash, hash=row.hash)


class LogQueries:
    async def _read(self, fn: Callable[[Connection], T],  # provided by SqlEventStore
                    *, snapshot: bool = False) -> T:
        raise NotImplementedError

    # --- reads --------------------------------------------------------------------------------
    async def list_events(
        self, *, incident_id: str | None = None, types: list[str] | None = None,
        since_seq: int = 0, limit: int = 100,
    ) -> list[StoredEvent]:
        def run(conn: Connection) -> list[StoredEvent]:
            q = select(events).where(events.c.seq > since_seq)
            if incident_id is not None:
                q = q.where(events.c.incident_id == incident_id)
            if types:
                q = q.where(events.c.type.in_(types))
            return [row_to_event(r) for r in conn.execute(q.order_by(events.c.seq).limit(limit))]
        return await self._read(run)

    async def last_event(self, types: list[str] | None = None) -> StoredEvent | None:
        def run(conn: Connection) -> StoredEvent | None:
            q = select(events)
            if types:
                q = q.where(events.c.type.in_(types))
            row = conn.execute(q.order_by(events.c.seq.desc()).limit(1)).first()
            return row_to_event(row) if row else None
        return await self._read(run)

    async def verify(self) -> VerifyResult:
        def run(conn: Connection) -> VerifyResult:
            prev, expected, checked = GENESIS_HASH, 1, 0
            batch = 5000
            while True:
                rows = conn.execute(select(events).where(events.c.seq >= expected)
                                    .order_by(events.c.seq).limit(batch)).all()
                if not rows:
                    break
                # The rows as stored: their data text is hashed as is, not decoded first.
                brk = verify_chain(rows, prev, expected)
                if brk is not None:  # count the intact events of this batch too
                    return VerifyResult(checked + max(0, brk.seq - expected), brk)
                checked += len(rows)
                prev, expected = str(rows[-1].hash), int(rows[-1].seq) + 1
            head = conn.execute(select(chain_head.c.seq, chain_head.c.hash)).one()
            if head.seq != expected - 1 or (checked and head.hash != prev):
                return VerifyResult(checked, ChainBreak(
                    expected, f"chain head says seq {head.seq}, log ends at {expected - 1}"))
            return VerifyResult(checked, None)
        return await self._read(run, snapshot=True)  # appends meanwhile: not a break

    async def get_incident(self, incident_id: str) -> dict[str, Any] | None:
        def run(conn: Connection) -> dict[str, Any] | None:
            row = conn.execute(_INCIDENT, {"incident_id": incident_id}).first()
            return dict(row._mapping) if row else None
        return await self._read(run)

    async def incident_snapshot(self, incident_id: str) -> IncidentSnapshot | None:
        def run(conn: Connection) -> IncidentSnapshot | None:
            key = {"incident_id": incident_id}
            row = conn.execute(_INCIDENT, key).first()
            if row is None:
                return None
            found = [dict(r._mapping) for r in conn.execute(_INCIDENT_ALERTS, key)]
            evs = [row_to_event(r) for r in conn.execute(_INCIDENT_EVENTS, key)]
            state = {r.key: r.value for r in conn.execute(_CONTROL)}
            return IncidentSnapshot(dict(row._mapping), found, evs, state)
        return await self._read(run, snapshot=True)  # the four reads see one state

    async def incident_alerts(self, incident_id: str, *, offset: int = 0,
                              limit: int | None = None) -> list[dict[str, Any]]:
        def run(conn: Connection) -> list[dict[str, Any]]:
            q = (select(alerts).where(alerts.c.incident_id == incident_id)
                 .order_by(alerts.c.id).offset(offset))
            rows = conn.execute(q.limit(limit) if limit is not None else q)
            return [dict(r._mapping) for r in rows]
        return await self._read(run)

    async def count_events(self, incident_id: str) -> int:
        def run(conn: Connection) -> int:
            return int(conn.execute(select(func.count()).select_from(events)
                                    .where(events.c.incident_id == incident_id)).scalar_one())
        return await self._read(run)

    async def list_incidents(
        self, *, status: str | None = None, limit: int = 50, cursor: int | None = None,
    ) -> IncidentPage:
        def run(conn: Connection) -> IncidentPage:
            q = select(incidents)
            if status is not None:
                q = q.where(incidents.c.status == status)
            if cursor is not None:
                q = q.where(incidents.c.opened_seq < cursor)
            rows = [dict(r._mapping) for r in
                    conn.execute(q.order_by(incidents.c.opened_seq.desc()).limit(limit + 1))]
            nxt = rows[limit - 1]["opened_seq"] if len(rows) > limit else None
            return IncidentPage(rows[:limit], nxt)
        return await self._read(run)

    async def incident_counts(self) -> dict[str, int]:
        def run(conn: Connection) -> dict[str, int]:
            counts = {s.value: 0 for s in IncidentStatus}
            for row in conn.execute(select(incidents.c.status, func.count())
                                    .group_by(incidents.c.status)):
                counts[row[0]] = int(row[1])
            return counts
        return await self._read(run)

    async def control_state(self) -> dict[str, str]:
        def run(conn: Connection) -> dict[str, str]:
            return {r.key: r.value for r in conn.execute(_CONTROL)}
        return await self._read(run)

    async def pending_incidents(self, limit: int = 1000,
                                unleased_at: float | None = None) -> list[str]:
        def run(conn: Connection) -> list[str]:
            q = (select(incidents.c.id)
                 .select_from(incidents.outerjoin(progress, progress.c.incident_id
                                                  == incidents.c.id))
                 .where(incidents.c.last_seq > func.coalesce(progress.c.processed_seq, 0)))
            if unleased_at is not None:
                q = q.where(~exists().where(leases.c.incident_id == incidents.c.id,
                                            leases.c.expires_at >= unleased_at))
            return [r.id for r in conn.execute(q.order_by(incidents.c.opened_seq).limit(limit))]
        return await self._read(run)

