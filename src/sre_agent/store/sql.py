"""SqlEventStore: the EventStore on SQLAlchemy Core (SQLite by default, PostgreSQL by URL).

Appends, ingest, progress and rebuilds; the writer thread, group commit and the batch's chain
head are the plumbing of store/sql_writer.py, the reads its query mixins.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.events import (
    DELIVERY_TYPES,
    EventType,
    NewEvent,
    StoredEvent,
    canonical_json,
    event_hash_from_text,
    utc_now,
)
from sre_agent.domain.incident import CorrelationSnapshot, IncidentStatus, KnownAlert, correlate
from sre_agent.ports import IngestResult, StoreUnavailable
from sre_agent.store.migrations import upgrade
from sre_agent.store.pg_inbox import PgInboxWriter
from sre_agent.store.projections import apply_event, apply_events
from sre_agent.store.schema import (
    PROJECTION_TABLES,
    actions,
    alerts,
    chain_head,
    events,
    inbox,
    incidents,
    progress,
)
from sre_agent.store.sql_actions import ActionQueries
from sre_agent.store.sql_leases import RELEASE_LEASE, LeaseQueries
from sre_agent.store.sql_reads import LogQueries, row_to_event
from sre_agent.store.sql_replicas import ReplicaQueries
from sre_agent.store.sql_writer import Combined, SqlPlumbing

T = TypeVar("T")
_CHUNK = 500

# The statements of every append and ingest, built once: building a Core statement cost more
# CPU than running it (about 100 us against 50 us on PostgreSQL), and a built one keeps its
# cache key, so each run is a lookup in the compiled cache.
_INSERT_EVENTS = insert(events)
_OPEN_INCIDENT = (select(incidents.c.id)
                  .where(incidents.c.group_key == bindparam("group_key"),
                         incidents.c.status != IncidentStatus.RESOLVED)
                  .order_by(incidents.c.opened_seq.desc()).limit(1))
_KNOWN_ALERTS = select(alerts.c.fingerprint, alerts.c.starts_at, alerts.c.incident_id,
                       alerts.c.status, alerts.c.received_seq).where(
    alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)))
# An ingest's snapshot in one round trip (two before): the group's open incident and the first
# chunk of the notification's alerts already known. The one-row chain head anchors the outer
# joins, unlocked: the batch locked it in a statement of its own before this one, since a
# statement that waits for a lock still reads the other tables as they were when it began
# (READ COMMITTED), and would miss what the lock holder committed meanwhile.
_OPEN_OF_GROUP = _OPEN_INCIDENT.subquery("open_incident")
_SNAPSHOT = (
    select(_OPEN_OF_GROUP.c.id.label("open_id"), alerts.c.fingerprint, alerts.c.starts_at,
           alerts.c.incident_id, alerts.c.status, alerts.c.received_seq)
    .select_from(chain_head.outerjoin(_OPEN_OF_GROUP, true()).outerjoin(
        alerts, alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True))))
    .where(chain_head.c.id == 1))
_ACTION_STATUS = select(actions.c.status).where(actions.c.id == bindparam("action_id"))
_LAST_SEQ = select(incidents.c.last_seq).where(incidents.c.id == bindparam("incident_id"))
_LATER_SEQS = (select(events.c.seq)
               .where(events.c.incident_id == bindparam("incident_id"),
                      events.c.seq > bindparam("through"), events.c.type.not_in(DELIVERY_TYPES))
               .order_by(events.c.seq))


def _progress_upsert(dialect: Any) -> Any:
    stmt = dialect.insert(progress).values(done=False)
    return stmt.on_conflict_do_update(index_elements=[progress.c.incident_id],
                                      set_={"processed_seq": stmt.excluded.processed_seq,
                                            "done": False})


_SET_PROGRESS = {"postgresql": _progress_upsert(postgresql), "sqlite": _progress_upsert(sqlite)}
_INCIDENT_MEMBERS = select(alerts.c.incident_id, alerts.c.fingerprint, alerts.c.starts_at,
                           alerts.c.status).where(
    alerts.c.incident_id.in_(bindparam("incident_ids", expanding=True)))


# Ids come back in the order of the rows (SQLAlchemy's "insertmanyvalues" sorts them).
_INSERT_INBOX = insert(inbox).returning(inbox.c.id, sort_by_parameter_order=True)


def _insert_inbox_rows(conn: Connection, bodies: list[str]) -> list[int]:
    """Insert inbox rows, one per body, in one statement; their ids in the same order."""
    at = utc_now().isoformat(timespec="microseconds")
    rows = conn.execute(_INSERT_INBOX, [{"received_at": at, "body": b} for b in bodies])
    return [int(r.id) for r in rows]


def new_incident_id() -> str:
    return "inc-" + uuid.uuid4().hex[:16]


class SqlEventStore(SqlPlumbing, LogQueries, ActionQueries, LeaseQueries, ReplicaQueries):
    def __init__(self, url: str) -> None:
        super().__init__(url)
        upgrade(self.engine)  # versioned migrations (store/migrations.py), idempotent
        # PostgreSQL: inbox rows from the event loop itself (store/pg_inbox.py)
        self._inbox_writer = (PgInboxWriter(url) if self.engine.dialect.name == "postgresql"
                              else None)

    def _append_in(self, conn: Connection, new: list[NewEvent]) -> list[StoredEvent]:
        """Append in this transaction, after the chain head this batch holds."""
        if not new:
            return []
        seq, prev = self._lock_head(conn)
        at = utc_now().isoformat(timespec="microseconds")
        stored: list[StoredEvent] = []
        rows: list[dict[str, Any]] = []
        for ev in new:
            seq += 1
            text = canonical_json(ev.data)  # stored as is: encoded once, not twice
            data = json.loads(text)  # exactly what is hashed and read back
            h = event_hash_from_text(seq=seq, incident_id=ev.incident_id, type=str(ev.type),
                                     at=at, actor=ev.actor, data_text=text, prev_hash=prev)
            s = StoredEvent(seq, ev.incident_id, ev.type, at, ev.actor, data, prev, h)
            stored.append(s)
            rows.append({"seq": seq, "incident_id": ev.incident_id, "type": str(ev.type), "at": at,
                         "actor": ev.actor, "data": text, "prev_hash": prev, "hash": h})
            prev = h
        conn.execute(_INSERT_EVENTS, rows)
        self._head, self._head_moved = (seq, prev), True  # written once, at the batch's end
        apply_events(conn, stored)
        return stored

    # --- writes -------------------------------------------------------------------------------
    async def append(self, new: list[NewEvent]) -> list[StoredEvent]:
        return await self._write(lambda conn: self._append_in(conn, new))

    async def append_guarded(self, action_id: str, allowed: frozenset[str],
                             new: list[NewEvent]) -> list[StoredEvent] | None:
        """Append only if the action is still in one of ``allowed`` statuses (atomically)."""
        def run(conn: Connection) -> list[StoredEvent] | None:
            self._lock_head(conn)  # before the status check: no one changes it meanwhile
            row = conn.execute(_ACTION_STATUS, {"action_id": action_id}).first()
            if row is None or row.status not in allowed:
                return None
            return self._append_in(conn, new)
        return await self._write(run)

    async def append_expecting(self, incident_id: str, last_seq: int,
                               new: list[NewEvent]) -> list[StoredEvent] | None:
        def run(conn: Connection) -> list[StoredEvent] | None:
            self._lock_head(conn)  # before the check: no one appends meanwhile
            current = conn.execute(_LAST_SEQ, {"incident_id": incident_id}).scalar()
            if current is None or int(current) != last_seq:
                return None
            return self._append_in(conn, new)
        return await self._write(run)

    async def ingest(self, notification: WebhookNotification) -> IngestResult:
        return await self._write(lambda conn: self._ingest_in(conn, notification))

    def _ingest_in(self, conn: Connection, notification: WebhookNotification) -> IngestResult:
        # Lock the head first so the snapshot cannot go stale (PostgreSQL replicas).
        self._lock_head(conn)
        snap = self._snapshot(conn, notification)
        result = correlate(notification, snap, new_incident_id)
        stored = self._append_in(conn, result.events)
        return IngestResult(result.touched, result.new_alerts, result.duplicates, stored,
                            result.duplicate_of, result.late)

    # --- the inbox (SRE_AGENT_WEBHOOK_ACK=queued) ---------------------------------------------
    async def enqueue(self, body: str) -> int:
        """Store a notification's raw body durably; its id orders the inbox. Enqueues that
        share a group-commit batch are one INSERT: PgInboxWriter's on PostgreSQL, one
        ``Combined`` execution of the writer thread on SQLite."""
        if self._inbox_writer is not None:
            return await self._inbox_writer.enqueue(body)
        return await self._write(Combined(_insert_inbox_rows, body))

    async def close(self) -> None:
        if self._inbox_writer is not None:
            await self._inbox_writer.close()
        await super().close()

    async def queued(self, limit: int = 100) -> list[tuple[int, str]]:
        """The oldest notifications of the inbox, (id, body), oldest first."""
        def run(conn: Connection) -> list[tuple[int, str]]:
            rows = conn.execute(select(inbox.c.id, inbox.c.body).order_by(inbox.c.id)
                                .limit(limit))
            return [(int(r.id), str(r.body)) for r in rows]
        return await self._read(run)

    async def inbox_depth(self) -> int:
        def run(conn: Connection) -> int:
            return int(conn.execute(select(func.count()).select_from(inbox)).scalar_one())
        return await self._read(run)

    async def ingest_queued(self, inbox_id: int,
                            notification: WebhookNotification) -> IngestResult | None:
        """Ingest a notification of the inbox and take it out, in one transaction: None when
        it is gone already (another replica ingested it: the head lock orders the two)."""
        def run(conn: Connection) -> IngestResult | None:
            self._lock_head(conn)
            if conn.execute(delete(inbox).where(inbox.c.id == inbox_id)).rowcount == 0:
                return None
            return self._ingest_in(conn, notification)
        return await self._write(run)

    @staticmethod
    def _fired(conn: Connection, row: Any) -> bool:
        """Whether a resolved alert's firing was received: the event that last wrote its row
        is not the AlertResolved that created it (rare path: one primary-key lookup)."""
        first = conn.execute(select(events.c.type).where(events.c.seq == row.received_seq)
                             ).scalar()
        return first != EventType.ALERT_RESOLVED

    def _snapshot(self, conn: Connection, n: WebhookNotification) -> CorrelationSnapshot:
        wanted = {(a.fingerprint, a.starts_at_key) for a in n.alerts}
        fingerprints = sorted({fp for fp, _ in wanted})
        rows = conn.execute(_SNAPSHOT, {"group_key": n.group_key,
                                        "fingerprints": fingerprints[:_CHUNK]}).all()
        open_id = rows[0].open_id
        snap = CorrelationSnapshot(open_incident_id=open_id)
        involved: set[str] = {open_id} if open_id else set()
        known: list[Any] = [r for r in rows if r.fingerprint is not None]
        for i in range(_CHUNK, len(fingerprints), _CHUNK):
            known += conn.execute(_KNOWN_ALERTS,
                                  {"fingerprints": fingerprints[i:i + _CHUNK]}).all()
        for row in known:
            key = (row.fingerprint, row.starts_at)
            if key in wanted:
                snap.alerts[key] = KnownAlert(
                    row.incident_id, row.status,
                    seen_firing=row.status != "resolved" or self._fired(conn, row))
                involved.add(row.incident_id)
        ids = sorted(involved)
        for i in range(0, len(ids), _CHUNK):
            for member in conn.execute(_INCIDENT_MEMBERS,
                                       {"incident_ids": ids[i:i + _CHUNK]}):
                snap.incident_alerts.setdefault(member.incident_id, {})[
                    (member.fingerprint, member.starts_at)] = member.status
        return snap

    async def mark_processed(self, incident_id: str, seq: int | None,
                             own: frozenset[int] = frozenset(),
                             release_owner: str | None = None) -> None:
        def run(conn: Connection) -> None:
            if release_owner is not None:
                conn.execute(RELEASE_LEASE, {"incident_id": incident_id, "owner": release_owner})
            key = {"incident_id": incident_id}
            through = seq
            if through is None:
                through = int(conn.execute(_LAST_SEQ, key).scalar() or 0)
            if own:
                for later in conn.execute(_LATER_SEQS, {**key, "through": through}).scalars():
                    if later not in own:
                        break  # someone else's: the incident stays pending for it
                    through = int(later)
            conn.execute(_SET_PROGRESS[conn.dialect.name], {**key, "processed_seq": through})
        await self._write(run)

    async def rebuild_projections(self) -> int:
        def run(conn: Connection) -> int:
            for table in PROJECTION_TABLES:
                conn.execute(delete(table))
            conn.execute(delete(progress))
            count = 0
            for row in conn.execute(select(events).order_by(events.c.seq)):
                apply_event(conn, row_to_event(row))
                count += 1
            return count
        return await self._write(run)

    async def writable(self) -> bool:
        def run(conn: Connection) -> bool:
            # A real, committed write (a no-op update of the head) proves the file and disk
            # accept writes: in WAL mode a rolled-back write never reaches the disk.
            conn.execute(update(chain_head).where(chain_head.c.id == 1)
                         .values(seq=chain_head.c.seq))
            return True
        try:
            return await self._write(run)
        except StoreUnavailable:
            return False
