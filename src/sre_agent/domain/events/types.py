"""Event types and actors: the names of what can happen in the log."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    INCIDENT_OPENED = "IncidentOpened"
    ALERT_RECEIVED = "AlertReceived"
    ALERT_RESOLVED = "AlertResolved"
    ALERT_RECEIVED_LATE = "AlertReceivedLate"  # a firing that arrived after its resolution
    INCIDENT_RESOLVED = "IncidentResolved"
    INCIDENT_ESCALATED = "IncidentEscalated"
    INCIDENT_ACKNOWLEDGED = "IncidentAcknowledged"  # an operator took it
    INCIDENT_ASSIGNED = "IncidentAssigned"
    NOTE_ADDED = "NoteAdded"
    ALERT_SILENCED = "AlertSilenced"  # an operator silenced the incident's alert
    EVIDENCE_COLLECTED = "EvidenceCollected"
    DIAGNOSIS_PRODUCED = "DiagnosisProduced"
    DIAGNOSIS_EXPLAINED = "DiagnosisExplained"  # the LLM's text for a diagnosis decided first
    ACTION_PROPOSED = "ActionProposed"
    ACTION_BLOCKED = "ActionBlocked"
    ACTION_AWAITING_APPROVAL = "ActionAwaitingApproval"
    ACTION_DRY_RUN = "ActionDryRun"
    ACTION_EXPIRED = "ActionExpired"
    ACTION_APPROVED = "ActionApproved"
    ACTION_REJECTED = "ActionRejected"
    ACTION_STARTED = "ActionStarted"
    ACTION_SUCCEEDED = "ActionSucceeded"
    ACTION_FAILED = "ActionFailed"
    VERIFICATION_PASSED = "VerificationPassed"
    VERIFICATION_FAILED = "VerificationFailed"
    VERIFICATION_INCONCLUSIVE = "VerificationInconclusive"
    BREAKER_TRIPPED = "BreakerTripped"
    BREAKER_RESET = "BreakerReset"
    MODE_CHANGED = "ModeChanged"
    PAUSED = "Paused"
    RESUMED = "Resumed"
    # Outgoing chat and paging messages (integrations/delivery.py); bookkeeping, see below.
    NOTIFICATION_ATTEMPTED = "NotificationAttempted"  # one attempt failed, another follows
    NOTIFICATION_DELIVERED = "NotificationDelivered"
    NOTIFICATION_FAILED = "NotificationFailed"  # given up after the last attempt


# Events that record the delivery of messages about an incident: they neither change the
# incident nor wake the pipeline (the projection leaves its last_seq alone).
DELIVERY_TYPES = frozenset({EventType.NOTIFICATION_ATTEMPTED, EventType.NOTIFICATION_DELIVERED,
                            EventType.NOTIFICATION_FAILED})


class Actor:
    """Who caused an event. Operators appear as ``operator:NAME``."""

    ALERTMANAGER = "alertmanager"
    AGENT = "agent"
    SYSTEM = "system"

    @staticmethod
    def operator(name: str) -> str:
        return f"operator:{name}"

    @staticmethod
    def slack_user(user_id: str) -> str:
        """An operator who clicked a button in Slack: ``operator:slack:U0123ABC``."""
        return f"operator:slack:{user_id}"
