"""The stage seam: each pipeline step is a Stage, run in order for one incident at a time.

Every Stage must be idempotent over the log: it looks at the incident's events, does its work
only if its own output event is missing, and appends what it did. That makes re-running an
incident after a crash, a rebuild or a new alert always safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sre_agent.domain.events import StoredEvent
from sre_agent.ports import EventStore


@dataclass
class IncidentWork:
    """Everything a stage needs about one incident, loaded once per run."""

    incident: dict[str, Any]
    alerts: list[dict[str, Any]]
    events: list[StoredEvent]
    control: dict[str, str]

    @property
    def id(self) -> str:
        return str(self.incident["id"])

    def has(self, event_type: str) -> bool:
        return any(e.type == event_type for e in self.events)


class Stage(Protocol):
    """``run`` returns the events it appended (the runner counts them as seen by this run, so
    they do not leave the incident pending), or None when it does not say: then any event
    appended after the run began leaves the incident pending for another run."""

    name: str

    async def run(self, work: IncidentWork,
                  store: EventStore) -> Sequence[StoredEvent] | None: ...


async def load_work(store: EventStore, incident_id: str) -> IncidentWork | None:
    """One read of the store (not four): it runs before every stage of every incident."""
    snap = await store.incident_snapshot(incident_id)
    if snap is None:
        return None
    return IncidentWork(snap.incident, snap.alerts, snap.events, snap.control)
