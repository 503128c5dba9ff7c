"""Who has an incident: acknowledged by whom and when, assigned to whom — derived from the
log (IncidentAcknowledged, IncidentAssigned), never stored in a projection column."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from sre_agent.domain.events import EventType, StoredEvent, payloads

# The events an ownership needs: read these (cheap, indexed by incident) instead of the log.
OWNERSHIP_EVENTS = (EventType.INCIDENT_ACKNOWLEDGED, EventType.INCIDENT_ASSIGNED)


@dataclass(frozen=True)
class Ownership:
    acknowledged_by: str | None = None
    acknowledged_at: str | None = None
    assignee: str | None = None
    assigned_by: str | None = None
    assigned_at: str | None = None


def ownership(events: Iterable[StoredEvent]) -> Ownership:
    """The first acknowledgement counts; the last assignment wins (an empty one unassigns)."""
    ack_by = ack_at = assignee = assigned_by = assigned_at = None
    for ev in events:
        p = ev.payload
        if isinstance(p, payloads.IncidentAcknowledged) and ack_by is None:
            ack_by, ack_at = ev.actor, ev.at
        elif isinstance(p, payloads.IncidentAssigned):
            assignee, assigned_by, assigned_at = p.assignee or None, ev.actor, ev.at
    return Ownership(ack_by, ack_at, assignee, assigned_by, assigned_at)
