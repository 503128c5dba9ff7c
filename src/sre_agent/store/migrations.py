"""Versioned schema migrations: a small runner on SQLAlchemy Core, no Alembic.

Why not Alembic: the schema is a dozen tables written once in ``schema.py``, both back ends take
the same Core DDL, and the agent upgrades itself at start-up. A list of numbered steps, a
``schema_version`` table and a lock held while upgrading give the same guarantees (ordered,
recorded, run once, safe with several replicas starting together) without a second
configuration, an ``env.py`` or autogenerate to review.

Rules for a schema change:
- never edit a released step; add ``Migration(N + 1, ...)`` with the ALTERs it needs;
- update ``schema.py`` to the result, and ``SCHEMA_FINGERPRINT`` to the new
  :func:`schema_fingerprint` (a test fails until both agree, so no change ships without a step);
- step 1 creates the tables of ``schema.py`` (``create_all``). A step that only adds a table
  creates it with ``checkfirst`` (a fresh database has it from step 1 already). The first step
  that alters an existing table must also replace step 1's ``create_all`` with a frozen copy of
  the tables as they stood before it, so a fresh database goes through every step in order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
    text,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.schema import CreateIndex, CreateTable

from sre_agent.domain.events import GENESIS_HASH
from sre_agent.store.schema import chain_head, inbox, leases, metadata, replicas

_version_metadata = MetaData()
schema_version = Table(
    "schema_version", _version_metadata,
    Column("version", Integer, primary_key=True),
    Column("description", String(200), nullable=False),
    Column("applied_at", String(40), nullable=False),
)
# One constant key for PostgreSQL's transaction-level advisory lock: replicas starting together
# upgrade one at a time; the others wait, then find nothing left to do.
_ADVISORY_KEY = 0x5E_A6_E7_01

# sha256 of the DDL of schema.py (see schema_fingerprint); changes only with a new migration.
SCHEMA_FINGERPRINT = "3ece5b4add4a105fa38b0b88ebf1186e2caba9fe025fdc9f51ecc8c4b179ddaf"


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection], None]


def _initial(conn: Connection) -> None:
    metadata.create_all(conn)
    if conn.execute(select(chain_head.c.id)).first() is None:
        conn.execute(insert(chain_head).values(id=1, seq=0, hash=GENESIS_HASH))


def _leases(conn: Connection) -> None:
    # A new table only: checkfirst, since a database created at this version by step 1's
    # create_all already has it.
    leases.create(conn, checkfirst=True)


def _replicas(conn: Connection) -> None:
    replicas.create(conn, checkfirst=True)  # a new table only, as in step 2


def _inbox(conn: Connection) -> None:
    inbox.create(conn, checkfirst=True)  # a new table only, as in step 2


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema: events, chain_head and the projections", _initial),
    Migration(2, "incident leases, for several replicas on one database", _leases),
    Migration(3, "replica heartbeats: who runs, in which role, since when", _replicas),
    Migration(4, "the inbox: notifications acknowledged before correlation", _inbox),
)
LATEST = MIGRATIONS[-1].version


class SchemaTooNew(Exception):
    """The database was upgraded by a newer agent: this one must not write to it."""


def schema_fingerprint() -> str:
    """A hash of the tables and indexes of ``schema.py`` as PostgreSQL DDL."""
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    digest = hashlib.sha256()
    for table in metadata.sorted_tables:
        digest.update(str(CreateTable(table).compile(dialect=dialect)).encode())
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            digest.update(str(CreateIndex(index).compile(dialect=dialect)).encode())
    return digest.hexdigest()


def current_version(conn: Connection) -> int:
    """The database's schema version: 0 when empty; 1 for a database made before versioning
    (its tables exist but no ``schema_version``), which is exactly version 1's schema."""
    names = set(sa_inspect(conn).get_table_names())
    if "schema_version" not in names:
        return 1 if "events" in names else 0
    row = conn.execute(select(schema_version.c.version)
                       .order_by(schema_version.c.version.desc()).limit(1)).first()
    return int(row.version) if row else 0


def upgrade(engine: Engine, *, now: Callable[[], str] | None = None) -> list[int]:
    """Bring the database to ``LATEST``; returns the versions applied (empty when current)."""
    from sre_agent.domain.events import utc_now

    stamp = now or (lambda: utc_now().isoformat(timespec="seconds"))
    applied: list[int] = []
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _ADVISORY_KEY})
        version = current_version(conn)
        if version > LATEST:
            raise SchemaTooNew(f"database schema is version {version}, this agent knows up to "
                               f"{LATEST}: run the newer agent, or restore a backup")
        _version_metadata.create_all(conn)
        if version == 1 and conn.execute(select(schema_version.c.version)).first() is None:
            conn.execute(insert(schema_version).values(
                version=1, description=MIGRATIONS[0].description + " (found, recorded)",
                applied_at=stamp()))
        for step in MIGRATIONS:
            if step.version <= version:
                continue
            step.apply(conn)
            conn.execute(insert(schema_version).values(
                version=step.version, description=step.description, applied_at=stamp()))
            applied.append(step.version)
    return applied
