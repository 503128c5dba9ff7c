"""The EventStore Protocol: what every store implementation must guarantee.

- ``append`` and ``ingest`` are atomic: events and their projections commit together or not at
  all, and the call returns only after the commit is durable.
- seq numbers are gap-free and strictly increasing; each record's ``prev_hash`` is the previous
  record's ``hash``.
- ``ingest`` is idempotent: the same alert (fingerprint, startsAt, status) is stored once.
- Any failure to write raises ``StoreUnavailable``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.events import ChainBreak, NewEvent, StoredEvent


class StoreUnavailable(Exception):
    """The store cannot read or write right now; a retry may help."""


@dataclass
class IngestResult:
    touched: list[str]
    new_alerts: int
    duplicates: int
    events: list[StoredEvent] = field(default_factory=list)
    duplicate_of: list[str] = field(default_factory=list)  # incidents of the duplicates


@dataclass
class VerifyResult:
    checked: int
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


@dataclass
class IncidentPage:
    items: list[dict[str, Any]]
    next_cursor: int | None


@dataclass
class GateHistory:
    """What the gate needs from the past: runs, failures, open breakers, track records."""

    last_run: dict[tuple[str, str], float] = field(default_factory=dict)
    recent_runs: list[float] = field(default_factory=list)
    recent_runs_by_target: dict[str, list[float]] = field(default_factory=dict)
    failures_by_target: dict[str, list[float]] = field(default_factory=dict)
    breaker_open: set[str] = field(default_factory=set)
    track_record: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)


class EventStore(Protocol):
    async def ingest(self, notification: WebhookNotification) -> IngestResult: ...

    async def append(self, events: list[NewEvent]) -> list[StoredEvent]: ...

    async def append_guarded(self, action_id: str, allowed: frozenset[str],
                             new: list[NewEvent]) -> list[StoredEvent] | None:
        """Append atomically only while the action's status is in ``allowed``; else None."""
        ...

    async def list_events(
        self, *, incident_id: str | None = None, types: list[str] | None = None,
        since_seq: int = 0, limit: int = 100,
    ) -> list[StoredEvent]: ...

    async def verify(self) -> VerifyResult: ...

    async def get_incident(self, incident_id: str) -> dict[str, Any] | None: ...

    async def incident_alerts(self, incident_id: str) -> list[dict[str, Any]]: ...

    async def list_incidents(
        self, *, status: str | None = None, limit: int = 50, cursor: int | None = None,
    ) -> IncidentPage: ...

    async def incident_counts(self) -> dict[str, int]: ...

    async def control_state(self) -> dict[str, str]: ...

    async def last_event(self, types: list[str] | None = None) -> StoredEvent | None: ...

    async def pending_incidents(self, limit: int = 1000) -> list[str]: ...

    async def mark_processed(self, incident_id: str, seq: int) -> None: ...

    async def writable(self) -> bool: ...

    async def rebuild_projections(self) -> int: ...

    async def list_actions(self, *, status: str | None = None, incident_id: str | None = None,
                           limit: int = 100) -> list[dict[str, Any]]: ...

    async def get_action(self, action_id: str) -> dict[str, Any] | None: ...

    async def gate_history(self, now: float, window_s: float) -> GateHistory: ...

    async def list_breakers(self) -> list[dict[str, Any]]: ...

    async def action_stats(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...
