"""The inbox's writer on PostgreSQL: queued acknowledgements written from the event loop.

With SRE_AGENT_WEBHOOK_ACK=queued the webhook's one write is an inbox row. Through the
store's writer threads that write cost the event loop more in waiting than in work: each
batch's thread took the GIL back from the loop between round trips (py-spy on the `api` role
under wrk at concurrency 32: the loop's thread sampled busy three times longer than it ran).
Here the rows go out on one psycopg async connection instead, from the loop itself: rows
queued while a batch is in flight form the next batch, one INSERT and one COMMIT for all of
them (group commit, as the writer threads do), and no thread is involved.

The statement is PostgreSQL's own: the batch's bodies as two arrays, unnested in order;
sequence values are drawn in that order, so the ids sorted are the rows' ids in order (what
SQLAlchemy's "insertmanyvalues" relies on too). One statement text whatever the batch size,
so the server prepares it once.
"""

from __future__ import annotations

import asyncio

import psycopg
from sqlalchemy.engine import make_url

from sre_agent.domain.events import utc_now
from sre_agent.ports import StoreUnavailable

_MAX_BATCH = 256
# store/schema.py's `inbox` table (its tests run this statement on a real server)
_INSERT = ("INSERT INTO inbox (received_at, body) SELECT at, body"
           " FROM unnest(%b::text[], %b::text[]) WITH ORDINALITY AS r(at, body, n)"
           " ORDER BY n RETURNING id")


def libpq_url(url: str) -> str:
    """The SQLAlchemy URL (``postgresql+psycopg://...``) as libpq takes it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgInboxWriter:
    """Group-committed inbox rows on one async connection, opened on first use."""

    def __init__(self, url: str) -> None:
        self._conninfo = libpq_url(url)
        self._conn: psycopg.AsyncConnection[tuple[int]] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # the connection's
        self._pending: list[tuple[str, asyncio.Future[int]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def enqueue(self, body: str) -> int:
        """The row's id once it is committed; StoreUnavailable when the database is not."""
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[int] = loop.create_future()
        self._pending.append((body, fut))
        if (self._flusher is None or self._flusher.done()
                or self._flusher.get_loop() is not loop):
            self._flusher = asyncio.create_task(self._flush())
        return await fut

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
            try:
                ids = await self._insert([body for body, _ in batch])
            except Exception as exc:  # the database's failure fails the whole batch
                error = (StoreUnavailable(str(exc).splitlines()[0][:200])
                         if isinstance(exc, psycopg.Error | OSError) else exc)
                for _, fut in batch:
                    if not fut.done():
                        fut.set_exception(error)
                continue
            for (_, fut), row_id in zip(batch, ids, strict=True):
                if not fut.done():
                    fut.set_result(row_id)

    async def _insert(self, bodies: list[str]) -> list[int]:
        at = utc_now().isoformat(timespec="microseconds")
        for attempt in (1, 2):
            conn = await self._connection()
            try:
                async with conn.transaction():
                    cur = await conn.execute(_INSERT, ([at] * len(bodies), bodies))
                    ids = sorted(int(row[0]) for row in await cur.fetchall())
                return ids
            except psycopg.OperationalError:
                # A connection that died (the server restarted) fails its first statement:
                # nothing was committed, so the batch runs again once on a new connection.
                if not conn.closed or attempt == 2:
                    raise
                self._conn = None
        raise AssertionError("unreachable")

    async def _connection(self) -> psycopg.AsyncConnection[tuple[int]]:
        loop = asyncio.get_running_loop()
        if self._conn is not None and self._loop is not loop:
            self._conn = None  # opened on another event loop (one that has ended): unusable
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._conninfo,
                                                               connect_timeout=10)
            self._loop = loop
        return self._conn

    async def close(self) -> None:
        """Wait for rows in flight, then close the connection (reopened on next use)."""
        if self._flusher is not None and self._loop is asyncio.get_running_loop():
            await asyncio.gather(self._flusher, return_exceptions=True)
        if self._conn is not None and self._loop is asyncio.get_running_loop():
            await self._conn.close()
        self._conn = None
