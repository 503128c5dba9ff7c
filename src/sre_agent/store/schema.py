"""Tables, in SQLAlchemy Core so SQLite (default) and PostgreSQL share one definition."""

from __future__ import annotations

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

metadata = MetaData()

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
    Column("id", String(64), primary_key=True),
    Column("group_key", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("title", Text, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("opened_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("resolved_at", String(40), nullable=True),
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
    Column("incident_id", String(64), nullable=False),
    Column("fingerprint", String(256), nullable=False),
    Column("starts_at", String(40), nullable=False),
    Column("status", String(20), nullable=False),
    Column("alertname", Text, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("annotations", JSON, nullable=False),
    Column("generator_url", Text, nullable=False),
    Column("ends_at", String(40), nullable=False),
    Column("received_seq", BigInteger, nullable=False),
    UniqueConstraint("fingerprint", "starts_at", name="uq_alert_identity"),
    Index("ix_alerts_incident", "incident_id"),
)

# Key/value state projected from control events (mode, paused).
control = Table(
    "control", metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

# Runner bookkeeping, not domain state: how far the pipeline has processed each incident.
# Not rebuilt from the log; after a rebuild every incident is simply processed again, which is
# safe because every stage is idempotent over the log.
progress = Table(
    "progress", metadata,
    Column("incident_id", String(64), primary_key=True),
    Column("processed_seq", BigInteger, nullable=False),
    Column("done", Boolean, nullable=False, default=False),
)


actions = Table(
    "actions", metadata,
    Column("id", String(64), primary_key=True),
    Column("incident_id", String(64), nullable=False),
    Column("kind", String(40), nullable=False),
    Column("target", Text, nullable=True),
    Column("alertname", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("status", String(30), nullable=False),
    Column("decision_reason", Text, nullable=True),
    Column("proposal", JSON, nullable=False),
    Column("result", JSON, nullable=True),
    Column("idempotency_key", String(300), nullable=False, unique=True),
    Column("proposed_at", String(40), nullable=False),
    Column("updated_at", String(40), nullable=False),
    Column("started_ts", Float, nullable=True),
    Column("finished_ts", Float, nullable=True),
    Column("updated_ts", Float, nullable=False),
    Column("decided_by", String(200), nullable=True),
    Index("ix_actions_status", "status"),
    Index("ix_actions_incident", "incident_id"),
    Index("ix_actions_target", "target", "started_ts"),
)

breakers = Table(
    "breakers", metadata,
    Column("target", String(255), primary_key=True),
    Column("state", String(10), nullable=False),
    Column("reason", Text, nullable=False),
    Column("changed_at", String(40), nullable=False),
)

action_stats = Table(
    "action_stats", metadata,
    Column("alertname", String(255), primary_key=True),
    Column("kind", String(40), primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("successes", Integer, nullable=False),
    Column("recoveries", Integer, nullable=False),
    Column("recovery_seconds_total", Float, nullable=False),
)

PROJECTION_TABLES = (incidents, alerts, control, actions, breakers, action_stats)
