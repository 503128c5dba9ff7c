"""Every port in one place: the Protocols the core depends on and adapters implement.

Adapters import this module and ``sre_agent.domain`` only (never each other); tests implement
the same Protocols with fakes (``tests/support/``).

EventStore: what every store implementation must guarantee.
- ``append`` and ``ingest`` are atomic: events and their projections commit together or not at
  all, and the call returns only after the commit is durable.
- seq numbers are gap-free and strictly increasing; each record's ``prev_hash`` is the previous
  record's ``hash``.
- ``ingest`` is idempotent: the same alert (fingerprint, startsAt, status) is stored once.
- Any failure to write raises ``StoreUnavailable``.

ActionBackend: every implementation must guarantee
- ``execute`` is time-bounded (it returns within its configured timeout plus a little) and never
  raises: every failure is an ``ActionResult`` with status ``failed`` and an ``error`` text;
- it acts only on the target it is given (the gate has already decided that target is allowed);
- ``reconcile`` answers from the world, never by acting: did the action take effect after
  ``started_at``? ``unknown`` when it cannot tell.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.diagnosis import ActionKind, Diagnosis
from sre_agent.domain.events import ChainBreak, NewEvent, StoredEvent
from sre_agent.domain.evidence import AlertContext, Evidence, ResolvedTarget
from sre_agent.domain.notifications import Delivered, IncidentCard, Message, Sent
from sre_agent.domain.policy import GateHistory
from sre_agent.domain.results import (
    ActionRequest,
    ActionResult,
    ReconcileResult,
    VerificationResult,
)
from sre_agent.domain.routing import Destination

# Leases whose key starts with this are the delivery worker's (one incident's chat messages),
# not an incident's pipeline work: the runner's lease watch leaves them alone.
DELIVERY_LEASE_PREFIX = "delivery:"

class StoreUnavailable(Exception):
    """The store cannot read or write right now; a retry may help."""


@dataclass
class IngestResult:
    touched: list[str]
    new_alerts: int
    duplicates: int
    events: list[StoredEvent] = field(default_factory=list)
    duplicate_of: list[str] = field(default_factory=list)  # incidents of the duplicates
    late: int = 0  # firings received after their own resolution (recorded, reopen nothing)


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
class IncidentSnapshot:
    """One incident as a pipeline run sees it, read at one moment: its projection row, its
    alerts, its log and the control state (mode, pause)."""

    incident: dict[str, Any]
    alerts: list[dict[str, Any]]
    events: list[StoredEvent]
    control: dict[str, str]


class EventStore(Protocol):
    async def ingest(self, notification: WebhookNotification) -> IngestResult: ...

    # The inbox (SRE_AGENT_WEBHOOK_ACK=queued): raw bodies durable before correlation.
    async def enqueue(self, body: str) -> int: ...

    async def queued(self, limit: int = 100) -> list[tuple[int, str]]: ...

    async def inbox_depth(self) -> int: ...

    async def ingest_queued(self, inbox_id: int,
                            notification: WebhookNotification) -> IngestResult | None:
        """Ingest and take out in one transaction; None when it was taken out already."""
        ...

    async def append(self, events: list[NewEvent]) -> list[StoredEvent]: ...

    async def append_guarded(self, action_id: str, allowed: frozenset[str],
                             new: list[NewEvent]) -> list[StoredEvent] | None:
        """Append atomically only while the action's status is in ``allowed``; else None."""
        ...

    async def append_expecting(self, incident_id: str, last_seq: int,
                               new: list[NewEvent]) -> list[StoredEvent] | None:
        """Append atomically only while the incident's log still ends at ``last_seq`` (its
        projection's ``last_seq``: optimistic concurrency for a decision made on what was
        read); else None, and the caller reads again and decides again."""
        ...

    async def list_events(
        self, *, incident_id: str | None = None, types: list[str] | None = None,
        since_seq: int = 0, limit: int = 100,
    ) -> list[StoredEvent]: ...

    async def verify(self) -> VerifyResult: ...

    async def get_incident(self, incident_id: str) -> dict[str, Any] | None: ...

    async def incident_snapshot(self, incident_id: str) -> IncidentSnapshot | None:
        """The incident, all its alerts and events, and the control state, in one read (one
        connection and one transaction); None when there is no such incident."""
        ...

    async def incident_alerts(self, incident_id: str, *, offset: int = 0,
                              limit: int | None = None) -> list[dict[str, Any]]:
        """The incident's alerts in the order received; ``offset``/``limit`` for a page."""
        ...

    async def count_events(self, incident_id: str) -> int:
        """How many events the incident's timeline holds."""
        ...

    async def list_incidents(
        self, *, status: str | None = None, limit: int = 50, cursor: int | None = None,
    ) -> IncidentPage: ...

    async def incident_counts(self) -> dict[str, int]: ...

    async def control_state(self) -> dict[str, str]: ...

    async def last_event(self, types: list[str] | None = None) -> StoredEvent | None: ...

    async def pending_incidents(self, limit: int = 1000,
                                unleased_at: float | None = None) -> list[str]:
        """Incidents whose log moved past what was processed, oldest first; with
        ``unleased_at``, without those whose lease runs past that time (someone works on them)."""
        ...

    async def mark_processed(self, incident_id: str, seq: int | None,
                             own: frozenset[int] = frozenset(),
                             release_owner: str | None = None) -> None:
        """Record the incident's log as processed through ``seq`` (None: through its last
        event), and further through the incident's next events as long as their seqs are in
        ``own`` (what the run appended itself): the first event not in ``own`` stops it, so
        whatever anyone else appended keeps the incident pending. Delivery records, which
        never make an incident pending, are skipped over. With ``release_owner``, the lease
        that owner holds on the incident is released in the same transaction."""
        ...

    async def claim(self, incident_id: str, owner: str, ttl_s: float, now: float) -> bool:
        """Take the incident's lease until ``now + ttl_s``, atomically: False when another
        owner holds one that has not run out. Claiming one's own lease extends it."""
        ...

    async def renew(self, incident_ids: list[str], owner: str, ttl_s: float,
                    now: float) -> None: ...

    async def release(self, incident_id: str, owner: str) -> None: ...

    async def list_leases(self, now: float) -> list[dict[str, Any]]: ...

    async def heartbeat(self, replica: dict[str, Any], now: float) -> None:
        """Record the replica (id, role, host, pid, version, started_at) as alive at ``now``."""
        ...

    async def forget_replica(self, replica_id: str) -> None: ...

    async def list_replicas(self) -> list[dict[str, Any]]: ...

    async def writable(self) -> bool: ...

    async def rebuild_projections(self) -> int: ...

    async def list_actions(self, *, status: str | None = None, incident_id: str | None = None,
                           limit: int = 100) -> list[dict[str, Any]]: ...

    async def get_action(self, action_id: str) -> dict[str, Any] | None: ...

    async def gate_history(self, now: float, window_s: float) -> GateHistory: ...

    async def list_breakers(self) -> list[dict[str, Any]]: ...

    async def action_stats(self) -> list[dict[str, Any]]: ...

    async def close(self) -> None: ...


# --- analysis -----------------------------------------------------------------------------------
class TargetResolver(Protocol):
    async def resolve(self, ctx: AlertContext) -> tuple[list[ResolvedTarget], Evidence]:
        """Map an incident's alerts to containers. Never raises: failures go in the Evidence."""
        ...


class EvidenceSource(Protocol):
    name: str

    async def collect(self, ctx: AlertContext, targets: list[ResolvedTarget]) -> list[Evidence]:
        """Read-only and time-bounded. Never raises: a failure is an Evidence with status error."""
        ...


class Analyzer(Protocol):
    name: str

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        """Produce one Diagnosis. May raise; the caller falls back to the rules."""
        ...


class Explainer(Protocol):
    """An analyser that can explain, after the fact, a diagnosis it proposed without waiting
    for the LLM (``Diagnosis.explanation_pending``)."""

    async def explain(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence], decided: Diagnosis) -> Diagnosis:
        """``decided`` with the LLM's text; its actions unchanged. Never raises."""
        ...


class InvestigationTools(Protocol):
    """Read-only tools the LLM may call while investigating (the collectors behind them)."""

    async def query_prometheus(self, promql: str) -> Evidence:
        """Run an instant PromQL query. Read-only; failures come back as Evidence(error)."""
        ...

    async def container_state(self, name: str) -> Evidence:
        """State, health and restart count of one container."""
        ...

    async def container_logs(self, name: str, tail: int = 50) -> Evidence:
        """The last ``tail`` log lines of one container."""
        ...


# An instant PromQL query (verification reads the alert's own expression through it).
QueryFn = Callable[[str], Awaitable[Evidence]]


# --- actions --------------------------------------------------------------------------------------
class ActionBackend(Protocol):
    """Acts on the world: containers, silences, notifications (a notifier is an ActionBackend
    for the notify and escalate kinds)."""

    kinds: frozenset[ActionKind]

    async def execute(self, request: ActionRequest) -> ActionResult: ...

    async def reconcile(self, request: ActionRequest, started_at: datetime
                        ) -> ReconcileResult: ...


class ChatDestination(Protocol):
    """Slack, Teams or PagerDuty, fed by the delivery worker (``pipeline/delivery.py``).

    ``messages`` is pure: what this destination should have for the incident, given what it
    already has (``have``: key -> last delivery); the worker sends those whose digest changed.
    ``send`` makes one attempt, time-bounded, and never raises: every failure is a ``Sent``
    with ``ok`` false, and no error text carries a token or webhook URL.
    """

    name: Destination

    def messages(self, card: IncidentCard, have: Mapping[str, Delivered]) -> list[Message]: ...

    async def send(self, message: Message, have: Delivered | None) -> Sent: ...

    async def close(self) -> None:
        """Close pooled connections (at shutdown)."""
        ...


class ContainerVerifier(Protocol):
    async def wait_recovered(self, name: str, deadline_s: float,
                             stable_s: float = 0.0) -> VerificationResult:
        """Wait until the container runs (and is healthy, when it has a health check), within
        ``deadline_s``, then until it has stayed so for ``stable_s`` (same start, no restart).
        Failed when it never came up or went down again (a crash loop); never raises."""
        ...
