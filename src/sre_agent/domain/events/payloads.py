"""One pydantic model per event type, and the registry from type to model.

Payloads are views over an event's ``data``: reading is lenient (every field has a default and
unknown keys are kept), so an old log always parses, and ``to_data`` writes back exactly the
fields that were set, so the hashed JSON stays what the producer meant.
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sre_agent.domain.events.types import EventType


class EventPayload(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)
    TYPE: ClassVar[EventType]

    def to_data(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_unset=True)


class UnknownPayload(EventPayload):
    """An event whose type this version does not know (or whose data does not parse)."""


class ResultData(BaseModel):
    """The ``result`` of an action or a verification, as recorded in the log."""

    model_config = ConfigDict(extra="allow", frozen=True)
    ok: bool | None = None
    status: str | None = None
    error: str | None = None
    reconciled: bool = False
    reconcile: str | None = None  # a ReconcileStatus, on outcomes found by reconciliation
    reason: str | None = None
    detail: Any = None  # a mapping from backends; a sentence on reconciled outcomes


# --- incidents and alerts ---------------------------------------------------------------------
class IncidentOpened(EventPayload):
    TYPE = EventType.INCIDENT_OPENED
    group_key: str = ""
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict)
    common_labels: dict[str, str] = Field(default_factory=dict)
    common_annotations: dict[str, str] = Field(default_factory=dict)
    external_url: str = ""
    title: str = ""
    severity: str = "none"


class _Alert(EventPayload):
    fingerprint: str = ""
    status: str = ""
    starts_at: str = ""
    ends_at: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    generator_url: str = ""
    group_key: str = ""


class AlertReceived(_Alert):
    TYPE = EventType.ALERT_RECEIVED


class AlertResolved(_Alert):
    TYPE = EventType.ALERT_RESOLVED


class AlertReceivedLate(_Alert):
    """The firing of an alert whose resolution was received first (a delivery retried late,
    or an Alertmanager HA peer): recorded, but it reopens nothing."""

    TYPE = EventType.ALERT_RECEIVED_LATE


class _Reasoned(EventPayload):
    reason: str = ""


class IncidentResolved(_Reasoned):
    """All alerts resolved (actor alertmanager), or an operator resolved it (``manual``)."""

    TYPE = EventType.INCIDENT_RESOLVED
    manual: bool = False


class IncidentEscalated(_Reasoned):
    TYPE = EventType.INCIDENT_ESCALATED


# --- operators on an incident (actor: the operator) -------------------------------------------
class IncidentAcknowledged(_Reasoned):
    TYPE = EventType.INCIDENT_ACKNOWLEDGED


class IncidentAssigned(_Reasoned):
    TYPE = EventType.INCIDENT_ASSIGNED
    assignee: str = ""


class NoteAdded(EventPayload):
    TYPE = EventType.NOTE_ADDED
    text: str = ""


class AlertSilenced(_Reasoned):
    """A silence created in Alertmanager from the incident page."""

    TYPE = EventType.ALERT_SILENCED
    silence_id: str = ""
    duration_s: int = 0
    ends_at: str = ""
    matchers: list[dict[str, Any]] = Field(default_factory=list)


class EvidenceCollected(EventPayload):
    TYPE = EventType.EVIDENCE_COLLECTED
    targets: list[dict[str, Any]] = Field(default_factory=list)
    evidence: list[dict[str, Any]] = Field(default_factory=list)


class DiagnosisProduced(EventPayload):
    """A ``Diagnosis`` as recorded (its other fields are kept as extras)."""

    TYPE = EventType.DIAGNOSIS_PRODUCED
    engine: str = "?"
    confidence: float | None = None
    summary: str = ""
    category: str = "unknown"


class DiagnosisExplained(EventPayload):
    """The LLM's text for a diagnosis proposed without waiting for it (``explanation_pending``):
    it changes no action; ``fallback_reason`` says why there is no text when the LLM did not
    answer."""

    TYPE = EventType.DIAGNOSIS_EXPLAINED
    summary: str = ""
    probable_cause: str = ""
    evidence: list[str] = Field(default_factory=list)
    model: str | None = None
    tokens: int = 0
    latency_ms: float = 0.0
    fallback_reason: str | None = None
    dropped_actions: list[dict[str, Any]] = Field(default_factory=list)
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)


# --- actions ----------------------------------------------------------------------------------
class ActionEvent(EventPayload):
    """Every event about one action carries its id."""

    action_id: str = ""


class ActionProposed(ActionEvent):
    TYPE = EventType.ACTION_PROPOSED
    idempotency_key: str = ""
    kind: str = ""
    target: str | None = None
    reason: str = ""
    alertname: str = ""
    proposal: dict[str, Any] = Field(default_factory=dict)


class ActionDecided(ActionEvent):
    """A gate or operator decision; ``code`` is the gate's reason code, when it decided."""

    reason: str = ""
    code: str | None = None


class ActionBlocked(ActionDecided):
    TYPE = EventType.ACTION_BLOCKED


class ActionDryRun(ActionDecided):
    TYPE = EventType.ACTION_DRY_RUN


class ActionAwaitingApproval(ActionDecided):
    TYPE = EventType.ACTION_AWAITING_APPROVAL
    expires_ts: float | None = None


class ActionExpired(ActionDecided):
    TYPE = EventType.ACTION_EXPIRED


class ActionApproved(ActionDecided):
    TYPE = EventType.ACTION_APPROVED


class ActionRejected(ActionDecided):
    TYPE = EventType.ACTION_REJECTED


class ActionStarted(ActionDecided):
    TYPE = EventType.ACTION_STARTED
    idempotency_key: str = ""
    kind: str = ""
    target: str | None = None


class _ActionFinished(ActionEvent):
    result: ResultData = Field(default_factory=ResultData)


class ActionSucceeded(_ActionFinished):
    TYPE = EventType.ACTION_SUCCEEDED


class ActionFailed(_ActionFinished):
    TYPE = EventType.ACTION_FAILED


class VerificationPassed(_ActionFinished):
    TYPE = EventType.VERIFICATION_PASSED


class VerificationFailed(_ActionFinished):
    TYPE = EventType.VERIFICATION_FAILED


class VerificationInconclusive(_ActionFinished):
    """The check could not tell (e.g. Prometheus unreachable): neither a pass nor a failure."""

    TYPE = EventType.VERIFICATION_INCONCLUSIVE


# --- breakers and operator control ------------------------------------------------------------
class _Breaker(_Reasoned):
    target: str = ""


class BreakerTripped(_Breaker):
    TYPE = EventType.BREAKER_TRIPPED


class BreakerReset(_Breaker):
    TYPE = EventType.BREAKER_RESET


class ModeChanged(_Reasoned):
    TYPE = EventType.MODE_CHANGED
    mode: str = ""


class Paused(_Reasoned):
    TYPE = EventType.PAUSED


class Resumed(_Reasoned):
    TYPE = EventType.RESUMED


# --- outgoing messages (actor: system) ----------------------------------------------------------
class NotificationEvent(EventPayload):
    """One message to one destination: ``destination`` is a name (slack, teams, pagerduty),
    never a URL or token; ``key`` names the message (``incident``, ``approval:ID``,
    ``resolved``, ``trigger``); ``op`` what was sent (post, update, trigger, resolve)."""

    destination: str = ""
    key: str = ""
    op: str = ""
    attempt: int = 1
    digest: str = ""  # of the content sent: an update goes out only when it changes
    upto_seq: int = 0  # the incident's last event the content was rendered from


class NotificationAttempted(NotificationEvent):
    TYPE = EventType.NOTIFICATION_ATTEMPTED
    error: str = ""
    status_code: int | None = None
    retry_in_s: float = 0.0


class NotificationDelivered(NotificationEvent):
    TYPE = EventType.NOTIFICATION_DELIVERED
    status_code: int | None = None
    channel: str = ""  # Slack: where the message is, so that it can be updated in place
    ts: str = ""
    link: str = ""  # a link to the message (Slack permalink), for the dashboard


class NotificationFailed(NotificationEvent):
    TYPE = EventType.NOTIFICATION_FAILED
    error: str = ""
    status_code: int | None = None


PAYLOADS: dict[str, type[EventPayload]] = {cls.TYPE: cls for cls in (
    IncidentOpened, AlertReceived, AlertResolved, AlertReceivedLate, IncidentResolved,
    IncidentEscalated, IncidentAcknowledged, IncidentAssigned, NoteAdded, AlertSilenced,
    EvidenceCollected, DiagnosisProduced, DiagnosisExplained, ActionProposed, ActionBlocked,
    ActionDryRun, ActionAwaitingApproval, ActionExpired, ActionApproved, ActionRejected,
    ActionStarted, ActionSucceeded, ActionFailed, VerificationPassed, VerificationFailed,
    VerificationInconclusive, BreakerTripped, BreakerReset, ModeChanged, Paused, Resumed,
    NotificationAttempted, NotificationDelivered, NotificationFailed)}
assert set(PAYLOADS) == set(EventType), "every EventType needs exactly one payload model"


def parse_payload(event_type: str, data: dict[str, Any]) -> EventPayload:
    """The typed payload for ``data``; an unknown type or unparsable data -> UnknownPayload."""
    cls = PAYLOADS.get(event_type)
    if cls is None:
        return UnknownPayload.model_validate(data)
    try:
        return cls.model_validate(data)
    except ValidationError:
        return UnknownPayload.model_validate(data)
