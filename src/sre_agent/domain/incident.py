"""Incidents and the correlation rule, as pure functions over a snapshot of current state.

One incident per Alertmanager ``groupKey`` while any of its alerts fire; each alert is stored
once per (fingerprint, startsAt); a resolved alert closes; the incident resolves when all of its
alerts have; a firing after resolution opens a new incident.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from sre_agent.domain.alertmanager import WebhookAlert, WebhookNotification
from sre_agent.domain.events import Actor, EventType, NewEvent

SEVERITY_ORDER = {"critical": 3, "error": 3, "page": 3, "warning": 2, "info": 1, "none": 0}


class IncidentStatus(StrEnum):
    OPEN = "open"
    ESCALATED = "escalated"
    RESOLVED = "resolved"


# Statuses of an incident that still needs someone: what the dashboard calls "open".
UNRESOLVED = frozenset({IncidentStatus.OPEN, IncidentStatus.ESCALATED})


def unresolved_count(counts: dict[str, int]) -> int:
    """Incidents still needing someone, from per-status counts (open and escalated)."""
    return sum(counts.get(status, 0) for status in UNRESOLVED)


class Mode(StrEnum):
    OBSERVE = "observe"
    DRY_RUN = "dry_run"
    APPROVAL = "approval"
    AUTONOMOUS = "autonomous"


AlertKey = tuple[str, str]  # (fingerprint, startsAt normalised)


@dataclass
class KnownAlert:
    incident_id: str
    status: str
    seen_firing: bool = True  # False: only its resolution has been received so far


@dataclass
class CorrelationSnapshot:
    """What correlation needs to know about the store: loaded in the same transaction."""

    open_incident_id: str | None
    alerts: dict[AlertKey, KnownAlert] = field(default_factory=dict)
    # every alert of every incident named above: incident id -> {key: status}
    incident_alerts: dict[str, dict[AlertKey, str]] = field(default_factory=dict)


@dataclass
class CorrelationResult:
    events: list[NewEvent]
    touched: list[str]  # incidents with new events: the pipeline looks at these again
    new_alerts: int
    duplicates: int
    # incidents that duplicates and late firings belong to: the answer names them
    duplicate_of: list[str] = field(default_factory=list)
    late: int = 0  # firings received after their own resolution


def alert_key(alert: WebhookAlert) -> AlertKey:
    return (alert.fingerprint, alert.starts_at_key)


def highest_severity(labels: list[dict[str, str]]) -> str:
    best = "none"
    for lab in labels:
        sev = lab.get("severity", "none").lower()
        if SEVERITY_ORDER.get(sev, 0) > SEVERITY_ORDER.get(best, 0):
            best = sev
    return best


def incident_title(n: WebhookNotification) -> str:
    names = sorted({a.alertname for a in n.alerts if a.alertname}) or ["(no alertname)"]
    title = ", ".join(names)
    summary = n.common_annotations.get("summary")
    return f"{title}: {summary}"[:300] if summary else title[:300]


def alert_data(n: WebhookNotification, a: WebhookAlert) -> dict[str, object]:
    return {
        "fingerprint": a.fingerprint,
        "status": a.status,
        "starts_at": a.starts_at_key,
        "ends_at": a.ends_at,
        "labels": a.labels,
        "annotations": a.annotations,
        "generator_url": a.generator_url,
        "group_key": n.group_key,
    }


def correlate(
    n: WebhookNotification, snap: CorrelationSnapshot, new_id: Callable[[], str]
) -> CorrelationResult:
    """Decide which events a notification adds. Repeats add nothing."""
    events: list[NewEvent] = []
    touched: list[str] = []
    duplicate_of: list[str] = []
    new_alerts = duplicates = late = 0
    open_id = snap.open_incident_id

    def touch(incident_id: str) -> None:
        if incident_id not in touched:
            touched.append(incident_id)

    def open_incident() -> str:
        nonlocal open_id
        open_id = new_id()
        snap.incident_alerts[open_id] = {}
        events.append(NewEvent(
            EventType.INCIDENT_OPENED, Actor.ALERTMANAGER, open_id,
            {"group_key": n.group_key, "receiver": n.receiver, "group_labels": n.group_labels,
             "common_labels": n.common_labels, "common_annotations": n.common_annotations,
             "external_url": n.external_url, "title": incident_title(n),
             "severity": highest_severity([a.labels for a in n.alerts])},
        ))
        return open_id

    for alert in n.alerts:
        key = alert_key(alert)
        known = snap.alerts.get(key)
        if alert.status == "firing":
            if known is not None:  # redelivery, or a stale firing after resolution
                if known.status == "resolved" and not known.seen_firing:
                    # Its resolution came first: record that it fired, reopen nothing.
                    events.append(NewEvent(EventType.ALERT_RECEIVED_LATE, Actor.ALERTMANAGER,
                                           known.incident_id, alert_data(n, alert)))
                    known.seen_firing = True
                    late += 1
                else:
                    duplicates += 1
                if known.incident_id not in duplicate_of:
                    duplicate_of.append(known.incident_id)
                continue
            incident_id = open_id or open_incident()
            events.append(NewEvent(EventType.ALERT_RECEIVED, Actor.ALERTMANAGER, incident_id,
                                   alert_data(n, alert)))
            snap.alerts[key] = KnownAlert(incident_id, "firing")
            snap.incident_alerts.setdefault(incident_id, {})[key] = "firing"
            new_alerts += 1
            touch(incident_id)
            continue
        # resolved
        if known is not None and known.status == "resolved":
            duplicates += 1
            if known.incident_id not in duplicate_of:
                duplicate_of.append(known.incident_id)
            continue
        # A resolved alert we never saw fire (the agent started later) is recorded all the same.
        incident_id = known.incident_id if known is not None else open_id or open_incident()
        events.append(NewEvent(EventType.ALERT_RESOLVED, Actor.ALERTMANAGER, incident_id,
                               alert_data(n, alert)))
        snap.alerts[key] = KnownAlert(incident_id, "resolved",
                                      seen_firing=known is not None)
        snap.incident_alerts.setdefault(incident_id, {})[key] = "resolved"
        new_alerts += 1
        touch(incident_id)
        if all(s == "resolved" for s in snap.incident_alerts[incident_id].values()):
            events.append(NewEvent(EventType.INCIDENT_RESOLVED, Actor.ALERTMANAGER, incident_id,
                                   {"reason": "all alerts resolved"}))
            if incident_id == open_id:
                open_id = None
    return CorrelationResult(events, touched, new_alerts, duplicates, duplicate_of, late)
