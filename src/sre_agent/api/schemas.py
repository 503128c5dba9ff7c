"""Response models: they make /openapi.json describe every route accurately."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sre_agent.domain.incident import Mode


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]]


class WebhookAccepted(BaseModel):
    status: str = "accepted"
    incidents: list[str] = Field(description="incidents this notification's alerts belong to, "
                                             "duplicates included")
    alerts_new: int
    alerts_duplicate: int
    alerts_late: int = Field(default=0, description="firings received after their own "
                                                    "resolution: recorded, reopen nothing")


class WebhookQueued(BaseModel):
    """The answer with SRE_AGENT_WEBHOOK_ACK=queued: durable, not yet correlated."""

    status: str = "queued"
    inbox_id: int = Field(description="the notification's place in the inbox; it becomes "
                                      "incidents once a process running the pipeline "
                                      "ingests it")
    alerts: int = Field(description="alerts in the notification")


class EventOut(BaseModel):
    seq: int
    incident_id: str | None
    type: str
    at: str
    actor: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class IncidentOut(BaseModel):
    id: str
    group_key: str
    status: str
    title: str
    severity: str
    opened_at: str
    updated_at: str
    resolved_at: str | None
    alerts_total: int
    alerts_firing: int
    diagnosis: dict[str, Any] | None = None


class IncidentList(BaseModel):
    items: list[IncidentOut]
    next_cursor: int | None


class AlertOut(BaseModel):
    fingerprint: str
    starts_at: str
    ends_at: str
    status: str
    alertname: str
    labels: dict[str, str]
    annotations: dict[str, str]
    generator_url: str


class IncidentDetail(IncidentOut):
    alerts: list[AlertOut] = Field(description="one page of the alerts, in the order received "
                                               "(`alerts_offset`, `alerts_limit`); "
                                               "`alerts_total` counts them all")
    alerts_offset: int
    alerts_limit: int
    events: list[EventOut] = Field(description="one page of the timeline, oldest first: the "
                                               "events after `events_since`")
    events_total: int = Field(description="every event of the incident")
    events_next_since: int | None = Field(description="pass as `events_since` for the next "
                                                      "page; null on the last page")
    acknowledged_by: str | None = Field(description="the operator who acknowledged it")
    acknowledged_at: str | None
    assignee: str | None = Field(description="who it is assigned to (last assignment)")
    chat: dict[str, str] = Field(default_factory=dict, description=(
        "destination (slack) -> a link to the incident's chat message, once posted"))


class AuditList(BaseModel):
    items: list[EventOut]
    next_since_seq: int | None


class VerifyOut(BaseModel):
    ok: bool
    checked: int
    first_bad_seq: int | None
    reason: str | None


class ControlIn(BaseModel):
    mode: Mode
    reason: str = Field(default="", max_length=500)


class ReasonIn(BaseModel):
    reason: str = Field(default="", max_length=500)


class ControlOut(BaseModel):
    mode: Mode
    paused: bool
    seq: int | None = None


class ComponentOut(BaseModel):
    status: str
    detail: str = ""


class EffectivenessOut(BaseModel):
    alertname: str
    kind: str
    attempts: int
    successes: int
    recoveries: int
    recovery_seconds_total: float


class LeaseOut(BaseModel):
    incident_id: str
    owner: str = Field(description="the id of the replica working on the incident")
    expires_in_s: float = Field(description="seconds until the lease runs out unless renewed")


class ReplicaOut(BaseModel):
    id: str = Field(description="host:pid:suffix, unique per start; the owner of its leases")
    role: str
    host: str
    pid: int
    version: str
    started_at: str
    last_heartbeat_at: str
    heartbeat_age_s: float
    stale: bool = Field(description="silent for more than three heartbeat periods: it died, "
                                    "hangs or cannot reach the database")
    this: bool = Field(description="the replica that answered this request")
    leases: list[str] = Field(default_factory=list, description="incidents it works on now")


class StatusOut(BaseModel):
    version: str
    uptime_s: float
    mode: Mode
    paused: bool
    store: ComponentOut
    incidents: dict[str, int]
    last_alert_at: str | None
    backlog: int
    inbox: int = Field(default=0, description="notifications queued, not yet correlated "
                                            "(SRE_AGENT_WEBHOOK_ACK=queued), all replicas'")
    components: dict[str, ComponentOut]
    pending_approvals: int = 0
    open_breakers: list[str] = Field(default_factory=list)
    effectiveness: list[EffectivenessOut] = Field(default_factory=list)
    llm: dict[str, Any] = Field(default_factory=dict)
    role: str = "all"
    replica_id: str = ""
    replicas: list[ReplicaOut] = Field(
        default_factory=list, description="every serve process recorded on this database")
    leases: list[LeaseOut] = Field(
        default_factory=list, description="incident leases running now (PostgreSQL only)")


class HealthOut(BaseModel):
    status: str


class AckIn(BaseModel):
    comment: str = Field(default="", max_length=1000)


class AssignIn(BaseModel):
    assignee: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$",
                          description="who takes the incident: a name, an email or a handle")
    comment: str = Field(default="", max_length=1000)


class NoteIn(BaseModel):
    text: str = Field(min_length=1, max_length=4000, pattern=r"\S",
                      description="free text; it is shown as text, never as markup")


class ResolveIn(BaseModel):
    reason: str = Field(default="", max_length=1000)


class SilenceIn(BaseModel):
    duration_s: int = Field(ge=60, le=86400, description="how long the silence lasts")
    comment: str = Field(default="", max_length=1000)


class IncidentCommandOut(BaseModel):
    incident: IncidentOut
    event: EventOut


class DecisionIn(BaseModel):
    comment: str = Field(default="", max_length=1000)


class ActionOut(BaseModel):
    id: str
    incident_id: str
    kind: str
    target: str | None
    alertname: str
    reason: str
    status: str
    decision_reason: str | None
    decided_by: str | None
    proposal: dict[str, Any]
    result: dict[str, Any] | None
    proposed_at: str
    updated_at: str


class BreakerOut(BaseModel):
    target: str
    state: str
    reason: str
    changed_at: str


class PolicyOut(BaseModel):
    mode: Mode
    paused: bool
    allowlist: list[str]
    available_actions: list[str]
    scope_label: str
    cooldown_s: float
    max_actions_per_hour: int
    max_actions_per_target_per_hour: int
    min_confidence_autonomous: float
    require_agreement: bool
    breaker_failures: int
    breaker_window_s: float
    approval_ttl_s: float
    verify_deadline_s: float
    verify_stable_s: float
    max_attempts: int
    min_attempts_for_stats: int
    min_success_rate: float


class DecisionOut(BaseModel):
    kind: str
    target: str | None
    decision: str
    reason: str


class SimulationOut(BaseModel):
    incident: dict[str, Any]
    diagnosis: dict[str, Any]
    evidence: list[dict[str, Any]]
    decisions: list[DecisionOut]
