"""The store's plumbing: group-committed writes on one writer thread, reads in the pool.

All writes go through one writer thread, so appends are serialised without locks on SQLite;
on PostgreSQL the ``chain_head`` row is locked ``FOR UPDATE`` for the same effect across
replicas. Writes queued while a batch runs share its transaction and its fsync. Reads run in
the default thread pool and never block the event loop.

Consecutive ``Combined`` jobs of one kind in a batch run as one call: 32 acknowledgements
queued together (inbox rows on SQLite) are one execution, not 32 (a fifth of the CPU per
row). On PostgreSQL the inbox has a writer of its own on the event loop (store/pg_inbox.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Generic, TypeVar

from sqlalchemy import Connection, bindparam, select, text, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from sre_agent.ingest_first import yield_to_ingest
from sre_agent.ports import StoreUnavailable
from sre_agent.store.engine import WRITE_OPTION, make_engine, make_read_engine
from sre_agent.store.schema import chain_head

T = TypeVar("T")
_MAX_BATCH = 256

# Built once (see store/sql.py): the chain head, locked and read once per batch, written once.
_LOCK_HEAD = (select(chain_head.c.seq, chain_head.c.hash).where(chain_head.c.id == 1)
              .with_for_update())
_SET_HEAD = update(chain_head).where(chain_head.c.id == 1).values(
    seq=bindparam("head_seq"), hash=bindparam("head_hash"))


class Combined(Generic[T]):
    """A write job that the batch may run together with the consecutive jobs of the same
    ``many``: ``many(conn, [item, ...])`` returns their results in order. Run alone (a batch
    rerun job by job after a failure), it is ``many(conn, [item])[0]``."""

    def __init__(self, many: Callable[[Connection, list[Any]], list[T]], item: Any) -> None:
        self.many, self.item = many, item

    def __call__(self, conn: Connection) -> T:
        return self.many(conn, [self.item])[0]


def _units(jobs: list[Callable[[Connection], Any]]) -> list[Callable[[Connection], list[Any]]]:
    """The jobs as units of work, each returning its jobs' results in order: a run of
    consecutive ``Combined`` jobs of the same ``many`` is one unit, one call."""
    units: list[Callable[[Connection], list[Any]]] = []
    i = 0
    while i < len(jobs):
        many = getattr(jobs[i], "many", None)
        j = i + 1
        while many is not None and j < len(jobs) and getattr(jobs[j], "many", None) is many:
            j += 1
        if many is None or j == i + 1:
            units.append(partial(_alone, jobs[i]))
        else:
            units.append(partial(_together, many, [job.item for job in jobs[i:j]]))  # type: ignore[attr-defined]
        i = j
    return units


def _alone(job: Callable[[Connection], Any], conn: Connection) -> list[Any]:
    return [job(conn)]


def _together(many: Callable[[Connection, list[Any]], list[Any]], items: list[Any],
              conn: Connection) -> list[Any]:
    return many(conn, items)


class _JobFailed(Exception):
    """A job of a batch run without savepoints raised: the batch is rolled back and rerun."""


class _Reconnect(Exception):
    """The batch's pooled connection was dead before it wrote anything: run it again."""


class SqlPlumbing:
    """Engines, the writer thread and its group commit, reads, the batch's chain head."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._read_engine = make_read_engine(url, self.engine)
        # The chain head as the running batch left it (the writer thread's alone).
        self._head: tuple[int, str] | None = None
        self._head_moved = False
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-writer")
        self._pending: list[tuple[Callable[[Connection], Any], asyncio.Future[Any]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def _write(self, fn: Callable[[Connection], T]) -> T:
        """Queue a write; concurrent writes share one transaction and one fsync (group commit).

        Each job runs in its own SAVEPOINT, so a job that raises is rolled back alone; a failed
        commit fails every job of the batch with StoreUnavailable.
        """
        await yield_to_ingest()  # pipeline work waits while webhooks are in flight
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
                outcomes = await loop.run_in_executor(self._executor, self._run_batch,
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
            # Under savepoints every job is its own unit, so one that raises fails alone.
            units = [partial(_alone, job) for job in jobs] if savepoints else _units(jobs)
            for unit in units:
                savepoint = conn.begin_nested() if savepoints else None
                head_before = (self._head, self._head_moved)
                try:
                    values = unit(conn)
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
                outcomes.extend((True, value) for value in values)
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
        await yield_to_ingest()  # pipeline work waits while webhooks are in flight
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

    async def close(self) -> None:
        """Release threads and connections. The store stays usable: a later call reconnects
        (an app may run its lifespan more than once, e.g. under a test client)."""
        old, self._executor = self._executor, ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="store-writer")
        old.shutdown(wait=True)
        self.engine.dispose()
        if self._read_engine is not self.engine:
            self._read_engine.dispose()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
