"""Response models: they make /openapi.json describe every route accurately."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from sre_agent.domain.incident import Mode


class ErrorOut(BaseModel):
    detail: str | list[dict[str, Any]]


class WebhookAccepted(BaseModel):
    status: str = "accepted"
    incidents: list[str]
    alerts_new: int
    alerts_duplicate: int


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
    alerts: list[AlertOut]
    events: list[EventOut]


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


class StatusOut(BaseModel):
    version: str
    uptime_s: float
    mode: Mode
    paused: bool
    store: ComponentOut
    incidents: dict[str, int]
    last_alert_at: str | None
    backlog: int
    components: dict[str, ComponentOut]


class HealthOut(BaseModel):
    status: str
