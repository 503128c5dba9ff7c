"""Tables, in SQLAlchemy Core so SQLite (default) and PostgreSQL share one definition."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

metadata = MetaData()


def _clean(value: Any, length: int | None) -> Any:
    if not isinstance(value, str):
        return value
    value = value.replace("\x00", "\ufffd")
    return value[:length] if length else value


class SafeText(TypeDecorator[str]):
    """Projection text as both back ends can hold it: NUL, which PostgreSQL refuses, becomes
    U+FFFD. Projections are for display and lookups; the log keeps the exact text, NUL
    included, in its canonical JSON (where it is escaped)."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return _clean(value, None)


class SafeString(TypeDecorator[str]):
    """A bounded projection string: NUL replaced as in SafeText, and clipped to the column's
    length (PostgreSQL refuses longer values; SQLite ignores lengths)."""

    impl = String
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        return _clean(value, getattr(self.impl_instance, "length", None))


# The log. Never updated, never deleted: the source of truth.
events = Table(
    "events", metadata,
    Column("seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=False),
    Column("incident_id", String(64), nullable=True),
    Column("type", String(64), nullable=False),
    Column("at", String(40), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("data", Text, nullable=False),  # canonical JSON, exactly what was hashed
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_events_incident", "incident_id", "seq"),
    Index("ix_events_type", "type", "seq"),
)

# One row: the head of the chain. Locked (FOR UPDATE) by each append on PostgreSQL.
chain_head = Table(
    "chain_head", metadata,
    Column("id", Integer, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

# --- projections: rebuildable from `events` -------------------------------------------------
incidents = Table(
    "incidents", metadata,
    Column("id", SafeString(64), primary_key=True),
    Column("group_key", SafeText, nullable=False),
    Column("status", SafeString(20), nullable=False),
    Column("title", SafeText, nullable=False),
    Column("severity", SafeString(20), nullable=False),
    Column("opened_at", SafeString(40), nullable=False),
    Column("updated_at", SafeString(40), nullable=False),
    Column("resolved_at", SafeString(40), nullable=True),
    Column("opened_seq", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("alerts_total", Integer, nullable=False, default=0),
    Column("alerts_firing", Integer, nullable=False, default=0),
    Column("diagnosis", JSON, nullable=True),
    Index("ix_incidents_group_status", "group_key", "status"),
    Index("ix_incidents_status_seq", "status", "opened_seq"),
)

alerts = Table(
    "alerts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("incident_id", SafeString(64), nullable=False),
    Column("fingerprint", SafeString(256), nullable=False),
    Column("starts_at", SafeString(40), nullable=False),
    Column("status", SafeString(20), nullable=False),
    Column("alertname", SafeText, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("generator_url", SafeText, nullable=False),
    Column("ends_at", SafeString(40), nullable=False),
    Column("received_seq", BigInteger, nullable=False),
    UniqueConstraint("fingerprint", "starts_at", name="uq_alert_identity"),
    Index("ix_alerts_incident", "incident_id"),
)

# Key/value state projected from control events (mode, paused).
control = Table(
    "control", metadata,
    Column("key", SafeString(64), primary_key=True),
    Column("value", SafeText, nullable=False),
)

# Runner bookkeeping, not domain state: how far the pipeline has processed each incident.
# Not rebuilt from the log; after a rebuild every incident is simply processed again, which is
# safe because every stage is idempotent over the log.
progress = Table(
    "progress", metadata,
    Column("incident_id", SafeString(64), primary_key=True),
    Column("processed_seq", BigInteger, nullable=False),
    Column("done", Boolean, nullable=False, default=False),
)


# Who works on an incident now: with several replicas on one database, one at a time. A lease
# runs out at ``expires_at`` (epoch seconds, the replicas' clocks) unless its owner renews it,
# so the incidents of a replica that died are taken over by another. Not rebuilt from the log.
leases = Table(
    "leases", metadata,
    Column("incident_id", SafeString(64), primary_key=True),
    Column("owner", SafeString(200), nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("claimed_at", Float, nullable=False),
)

# Who is running: every ``sre-agent serve`` process upserts its row every ``heartbeat_s``
# (epoch seconds, its own clock) and deletes it on a clean stop; a row that stops moving is a
# replica that died. Its ``id`` is the owner of the leases it holds. Not rebuilt from the log.
replicas = Table(
    "replicas", metadata,
    Column("id", SafeString(200), primary_key=True),
    Column("role", SafeString(20), nullable=False),
    Column("host", SafeString(255), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("version", SafeString(40), nullable=False),
    Column("started_at", Float, nullable=False),
    Column("heartbeat_at", Float, nullable=False),
)


# Notifications acknowledged before correlation (SRE_AGENT_WEBHOOK_ACK=queued): the raw body,
# durable at the answer, ingested into the log in order and deleted in that same transaction.
inbox = Table(
    "inbox", metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
           autoincrement=True),
    Column("received_at", String(40), nullable=False),
    Column("body", Text, nullable=False),
    sqlite_autoincrement=True,  # ids never reused, as PostgreSQL's: an answer names one row
)

actions = Table(
    "actions", metadata,
    Column("id", SafeString(64), primary_key=True),
    Column("incident_id", SafeString(64), nullable=False),
    Column("kind", SafeString(40), nullable=False),
    Column("target", SafeText, nullable=True),
    Column("alertname", SafeText, nullable=False),
    Column("reason", SafeText, nullable=False),
    Column("status", SafeString(30), nullable=False),
    Column("decision_reason", SafeText, nullable=True),
    Column("proposal", JSON, nullable=False),
    Column("result", JSON, nullable=True),
    Column("idempotency_key", SafeString(300), nullable=False, unique=True),
    Column("proposed_at", SafeString(40), nullable=False),
    Column("updated_at", SafeString(40), nullable=False),
    Column("started_ts", Float, nullable=True),
    Column("finished_ts", Float, nullable=True),
    Column("updated_ts", Float, nullable=False),
    Column("decided_by", SafeString(200), nullable=True),
    Index("ix_actions_status", "status"),
    Index("ix_actions_incident", "incident_id"),
    Index("ix_actions_target", "target", "started_ts"),
)

breakers = Table(
    "breakers", metadata,
    Column("target", SafeString(255), primary_key=True),
    Column("state", SafeString(10), nullable=False),
    Column("reason", SafeText, nullable=False),
    Column("changed_at", SafeString(40), nullable=False),
)

action_stats = Table(
    "action_stats", metadata,
    Column("alertname", SafeString(255), primary_key=True),
    Column("kind", SafeString(40), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("successes", Integer, nullable=False),
    Column("recoveries", Integer, nullable=False),
    Column("recovery_seconds_total", Float, nullable=False),
)

PROJECTION_TABLES = (incidents, alerts, control, actions, breakers, action_stats)
