"""The SQLAlchemy engine for a store URL: SQLite tuned for a durable single writer, any other
URL (PostgreSQL) with connection health checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event

# Execution option marking a connection that will write (see _begin).
WRITE_OPTION = "sre_agent_write"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy, not the sqlite3 module, manage transactions, so SAVEPOINTs work.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")  # durable before we answer 2xx
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            # A writer takes the write lock up front (IMMEDIATE): a deferred transaction that
            # read first fails at once with "database is locked" when another process wrote
            # meanwhile, instead of waiting out the busy timeout.
            write = conn.get_execution_options().get(WRITE_OPTION)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    # No pool_pre_ping: a ping is one more round trip (and ~100 us of CPU) on every checkout.
    # A connection that died (the server restarted) fails its first statement instead, which
    # invalidates the whole pool; the store then runs that read or batch again once on a
    # fresh connection (SqlEventStore._read and _run_batch), as the ping would have.
    return create_engine(url)


def make_read_engine(url: str, engine: Engine) -> Engine:
    """The engine for reads. PostgreSQL: its own pool in autocommit, so a one-statement read
    is one round trip, not three (BEGIN, the SELECT, ROLLBACK); under READ COMMITTED a
    transaction gave those reads nothing, as each statement sees its own snapshot anyway.
    Reads that must see one state use the write engine in REPEATABLE READ
    (``SqlEventStore._read(..., snapshot=True)``). SQLite: the same engine (in process, no
    round trips; a read transaction is one WAL snapshot)."""
    if engine.dialect.name != "postgresql":
        return engine
    return create_engine(url, isolation_level="AUTOCOMMIT")
