"""SqlEventStore: the EventStore on SQLAlchemy Core (SQLite by default, PostgreSQL by URL).

All writes go through one writer thread, so appends are serialised without locks on SQLite;
on PostgreSQL the ``chain_head`` row is locked ``FOR UPDATE`` for the same effect across
replicas. Reads run in the default thread pool and never block the event loop.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from sqlalchemy import (
    Connection,
    bindparam,
    delete,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

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
from sre_agent.store.engine import WRITE_OPTION, make_engine, make_read_engine
from sre_agent.store.migrations import upgrade
from sre_agent.store.projections import apply_event, apply_events
from sre_agent.store.schema import (
    PROJECTION_TABLES,
    actions,
    alerts,
    chain_head,
    events,
    incidents,
    progress,
)
from sre_agent.store.sql_actions import ActionQueries
from sre_agent.store.sql_leases import RELEASE_LEASE, LeaseQueries
from sre_agent.store.sql_reads import LogQueries, row_to_event
from sre_agent.store.sql_replicas import ReplicaQueries

T = TypeVar("T")
_CHUNK = 500
_MAX_BATCH = 256

# The statements of every append and ingest, built once: building a Core statement cost more
# CPU than running it (about 100 us against 50 us on PostgreSQL), and a built one keeps its
# cache key, so each run is a lookup in the compiled cache.
_LOCK_HEAD = (select(chain_head.c.seq, chain_head.c.hash).where(chain_head.c.id == 1)
              .with_for_update())
_SET_HEAD = update(chain_head).where(chain_head.c.id == 1).values(
    seq=bindparam("head_seq"), hash=bindparam("head_hash"))
_INSERT_EVENTS = insert(events)
_OPEN_INCIDENT = (select(incidents.c.id)
                  .where(incidents.c.group_key == bindparam("group_key"),
                         incidents.c.status != IncidentStatus.RESOLVED)
                  .order_by(incidents.c.opened_seq.desc()).limit(1))
_KNOWN_ALERTS = select(alerts.c.fingerprint, alerts.c.starts_at, alerts.c.incident_id,
                       alerts.c.status, alerts.c.received_seq).where(
    alerts.c.fingerprint.in_(bindparam("fingerprints", expanding=True)))
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


class _JobFailed(Exception):
    """A job of a batch run without savepoints raised: the batch is rolled back and rerun."""


class _Reconnect(Exception):
    """The batch's pooled connection was dead before it wrote anything: run it again."""


def new_incident_id() -> str:
    return "inc-" + uuid.uuid4().hex[:16]


class SqlEventStore(LogQueries, ActionQueries, LeaseQueries, ReplicaQueries):
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._read_engine = make_read_engine(url, self.engine)
        # The chain head as the running batch left it (the writer thread's alone).
        self._head: tuple[int, str] | None = None
        self._head_moved = False
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._pending: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None
        upgrade(self.engine)  # versioned migrations (store/migrations.py), idempotent

    # --- plumbing -----------------------------------------------------------------------------
    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """Queue a write; concurrent writes share one transaction and one fsync (group commit).

        Each job runs in its own SAVEPOINT, so a job that raises is rolled back alone; a failed
        commit fails every job of the batch with StoreUnavailable.
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._pending.append((fn, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush())
        result: T = await fut
        return result

    async def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
            try:
                outcomes = await loop.run_in_executor(self._writer, self._run_batch,
                                                      [fn for fn, _ in batch])
            except Exception as exc:
                if isinstance(exc, SQLAlchemyError):
                    # A connection opened while the disk refused writes stays read-only for
                    # good (SQLite opened its WAL read-only): drop them all, so we recover.
                    self.engine.dispose()
                error: Exception = (StoreUnavailable(str(exc).splitlines()[0][:200])
                                    if isinstance(exc, SQLAlchemyError | OSError) else exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(error)
                continue
            for (_, fut), (ok, value) in zip(batch, outcomes, strict=True):
                if fut.done():
                    continue
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

    def _run_batch(self, jobs: list[Callable[[Connection], Any]]) -> list[tuple[bool, Any]]:
        """Run the jobs in one transaction. Optimistically without savepoints (two round trips
        per job saved on PostgreSQL): a job that raises rolls the whole batch back, and the
        batch runs again with each job in its own SAVEPOINT, so only that job fails. Jobs are
        pure functions of the connection, so running one twice is safe."""
        try:
            return self._run_isolated(jobs)
        except _Reconnect:  # a pooled connection had died before anything was committed
            return self._run_isolated(jobs)

    def _run_isolated(self, jobs: list[Callable[[Connection], Any]]) -> list[tuple[bool, Any]]:
        if len(jobs) > 1:
            try:
                return self._run_jobs(jobs, savepoints=False)
            except _JobFailed:
                pass
        return self._run_jobs(jobs, savepoints=len(jobs) > 1)

    def _run_jobs(self, jobs: list[Callable[[Connection], Any]],
                  savepoints: bool) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        self._head, self._head_moved = None, False  # this batch's chain head (see _lock_head)
        with self.engine.connect() as conn, conn.execution_options(
                **{WRITE_OPTION: True}).begin():
            if conn.dialect.name == "postgresql":
                # One lock order for every write transaction of every replica: the chain head
                # first. A batch that took a lease or progress row before its first append
                # deadlocked with another replica's batch holding the head and wanting that
                # row (seen in the two-replica storm: PostgreSQL aborted one after 1 s, 503).
                # SQLite's BEGIN IMMEDIATE already serialises writers.
                self._lock_head(conn)
            for job in jobs:
                savepoint = conn.begin_nested() if savepoints else None
                head_before = (self._head, self._head_moved)
                try:
                    value = job(conn)
                except DBAPIError as exc:
                    if exc.connection_invalidated and not outcomes:
                        # The connection was dead before this batch wrote anything (the server
                        # restarted): the pool is invalidated; run the batch again, once.
                        raise _Reconnect from exc
                    raise  # the connection may be unusable: fail the whole batch
                except SQLAlchemyError:
                    raise  # the connection may be unusable: fail the whole batch
                except Exception as exc:
                    if savepoint is None:
                        if len(jobs) > 1:
                            raise _JobFailed from exc  # rolled back: run again, isolated
                        raise
                    savepoint.rollback()  # its events, and a head lock it took, are undone
                    self._head, self._head_moved = head_before
                    outcomes.append((False, exc))
                    continue
                if savepoint is not None:
                    savepoint.commit()
                outcomes.append((True, value))
            if self._head_moved and self._head is not None:
                conn.execute(_SET_HEAD, {"head_seq": self._head[0], "head_hash": self._head[1]})
        return outcomes

    async def _read(self, fn: Callable[[Connection], T], *, snapshot: bool = False) -> T:
        """Run ``fn`` on a read connection in a worker thread. ``snapshot``: in one transaction
        that sees one state of the store (REPEATABLE READ on PostgreSQL, whose read engine is
        in autocommit; SQLite's read transaction is one WAL snapshot). A connection found dead
        (the server restarted) is replaced and the read run again, once."""
        def run() -> T:
            if not snapshot:
                with self._read_engine.connect() as conn:
                    return fn(conn)
            with self.engine.connect() as conn:
                if conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    return fn(conn)
        for attempt in (1, 2):
            try:
                return await asyncio.to_thread(run)
            except DBAPIError as exc:
                if exc.connection_invalidated and attempt == 1:
                    continue
                raise StoreUnavailable(str(exc).splitlines()[0][:200]) from exc
            except (SQLAlchemyError, OSError) as exc:
                raise StoreUnavailable(str(exc).splitlines()[0][:200]) from exc
        raise AssertionError("unreachable")

    def _lock_head(self, conn: Connection) -> tuple[int, str]:
        """The chain head's (seq, hash), locked until the transaction ends (PostgreSQL).

        Read and locked once per group-commit batch: the batch's later jobs run in the same
        transaction, holding the lock, so they take the head the earlier ones left in memory,
        and the batch writes the head once, before it commits (``_run_jobs``). Two round trips
        per append saved, one SELECT ... FOR UPDATE and one UPDATE of the head."""
        if self._head is None:
            row = conn.execute(_LOCK_HEAD).one()
            self._head = (int(row.seq), str(row.hash))
        return self._head

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
        def run(conn: Connection) -> IngestResult:
            # Lock the head first so the snapshot cannot go stale (PostgreSQL replicas).
            self._lock_head(conn)
            snap = self._snapshot(conn, notification)
            result = correlate(notification, snap, new_incident_id)
            stored = self._append_in(conn, result.events)
            return IngestResult(result.touched, result.new_alerts, result.duplicates, stored,
                                result.duplicate_of, result.late)
        return await self._write(run)

    @staticmethod
    def _fired(conn: Connection, row: Any) -> bool:
        """Whether a resolved alert's firing was received: the event that last wrote its row
        is not the AlertResolved that created it (rare path: one primary-key lookup)."""
        first = conn.execute(select(events.c.type).where(events.c.seq == row.received_seq)
                             ).scalar()
        return first != EventType.ALERT_RESOLVED

    def _snapshot(self, conn: Connection, n: WebhookNotification) -> CorrelationSnapshot:
        open_row = conn.execute(_OPEN_INCIDENT, {"group_key": n.group_key}).first()
        snap = CorrelationSnapshot(open_incident_id=open_row.id if open_row else None)
        wanted = {(a.fingerprint, a.starts_at_key) for a in n.alerts}
        fingerprints = sorted({fp for fp, _ in wanted})
        involved: set[str] = {open_row.id} if open_row else set()
        for i in range(0, len(fingerprints), _CHUNK):
            chunk = fingerprints[i:i + _CHUNK]
            for row in conn.execute(_KNOWN_ALERTS, {"fingerprints": chunk}):
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

    async def close(self) -> None:
        """Release threads and connections. The store stays usable: a later call reconnects
        (an app may run its lifespan more than once, e.g. under a test client)."""
        old, self._writer = self._writer, ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="store-writer")
        old.shutdown(wait=True)
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
