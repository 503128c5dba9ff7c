"""Operator commands on an incident (acknowledge, assign, note, resolve, silence) through the
one command path, on the in-memory store."""

from __future__ import annotations

from datetime import datetime

import pytest

from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import IncidentStatus, Mode
from sre_agent.domain.ownership import ownership
from sre_agent.domain.policy import Policy
from sre_agent.domain.results import ActionRequest, ActionResult, ReconcileResult, ReconcileStatus
from sre_agent.pipeline.commands import (
    Acknowledge,
    AddNote,
    Assign,
    CommandBus,
    Conflict,
    NotFound,
    ResolveIncident,
    SilenceAlert,
    Unavailable,
)
from sre_agent.ports import ActionBackend
from sre_agent.web.incident_view import timeline
from sre_agent.web.report import build_report
from tests.support.handlers import Clock, incident_with_proposal
from tests.support.memory_store import InMemoryEventStore

ALICE, BOB = Actor.operator("alice"), Actor.operator("bob")


class RecordingSilencer:
    """An ActionBackend for silences that records what it was asked (Alertmanager itself is
    exercised in tests/integration/test_incident_page.py)."""

    kinds = frozenset({ActionKind.SILENCE_ALERT})

    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.requests: list[ActionRequest] = []

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.requests.append(request)
        if not self.ok:
            return ActionResult.of(False, error="alertmanager unreachable")
        return ActionResult.of(True, {"silence_id": "sil-1", "ends_at": "2026-01-01T01:00:00Z",
                                      "matchers": [{"name": "alertname", "value": "x"}]})

    async def reconcile(self, request: ActionRequest, started_at: datetime) -> ReconcileResult:
        return ReconcileResult(status=ReconcileStatus.UNKNOWN, reason="not used")


def bus(store: InMemoryEventStore, clock: Clock, submitted: list[str] | None = None,
        silencer: ActionBackend | None = None) -> CommandBus:
    return CommandBus(store, Policy(approval_ttl_s=600.0), default_mode=Mode.APPROVAL,
                      submit=(submitted if submitted is not None else []).append, clock=clock,
                      silencer=silencer)


async def test_acknowledge_records_the_operator_once(store: InMemoryEventStore,
                                                     clock: Clock) -> None:
    incident, _ = await incident_with_proposal(store)
    result = await bus(store, clock).handle(Acknowledge(incident, ALICE, "on it"))
    assert result.event.type == EventType.INCIDENT_ACKNOWLEDGED
    assert result.event.actor == ALICE and result.event.data == {"reason": "on it"}
    with pytest.raises(Conflict, match="already acknowledged by operator:alice"):
        await bus(store, clock).handle(Acknowledge(incident, BOB))
    owner = ownership(await store.list_events(incident_id=incident, limit=1000))
    assert owner.acknowledged_by == ALICE and owner.assignee is None


async def test_assign_last_one_wins_and_same_assignee_is_a_conflict(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, _ = await incident_with_proposal(store)
    await bus(store, clock).handle(Assign(incident, "carol", ALICE))
    with pytest.raises(Conflict, match="already assigned to carol"):
        await bus(store, clock).handle(Assign(incident, "carol", BOB))
    await bus(store, clock).handle(Assign(incident, "dave@example.com", BOB, "handover"))
    owner = ownership(await store.list_events(incident_id=incident, limit=1000))
    assert (owner.assignee, owner.assigned_by) == ("dave@example.com", BOB)


async def test_note_is_kept_verbatim_and_shown_as_text(store: InMemoryEventStore,
                                                       clock: Clock) -> None:
    incident, _ = await incident_with_proposal(store)
    text = "<b>restarted</b> the LB by hand; see ticket OPS-1"
    result = await bus(store, clock).handle(AddNote(incident, text, ALICE))
    assert result.event.data == {"text": text}
    rows = timeline(await store.list_events(incident_id=incident, limit=1000))
    assert rows[-1].type == EventType.NOTE_ADDED
    assert rows[-1].text == f"Note from {ALICE}: {text}"


async def test_manual_resolve_resolves_once_and_hands_the_incident_on(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await incident_with_proposal(store)
    await store.append([NewEvent.of(ev.ActionAwaitingApproval(action_id=aid, reason="approval"),
                                    Actor.AGENT, incident)])
    submitted: list[str] = []
    result = await bus(store, clock, submitted).handle(
        ResolveIncident(incident, ALICE, "fixed the DNS by hand"))
    assert result.incident["status"] == IncidentStatus.RESOLVED
    assert result.event.type == EventType.INCIDENT_RESOLVED and result.event.actor == ALICE
    assert result.event.data == {"reason": "fixed the DNS by hand", "manual": True}
    assert submitted == [incident]  # the pipeline expires its pending approval
    with pytest.raises(Conflict, match="already resolved"):
        await bus(store, clock).handle(ResolveIncident(incident, BOB))
    with pytest.raises(Conflict, match="resolved: nothing to acknowledge"):
        await bus(store, clock).handle(Acknowledge(incident, BOB))
    events = await store.list_events(incident_id=incident, limit=1000)
    report = build_report(events, generated_at="2026-01-01T00:00:00Z")
    assert f"Resolved by hand by {ALICE}" in report


async def test_unknown_incident_is_not_found(store: InMemoryEventStore, clock: Clock) -> None:
    for cmd in (Acknowledge("inc-nope", ALICE), Assign("inc-nope", "x", ALICE),
                AddNote("inc-nope", "x", ALICE), ResolveIncident("inc-nope", ALICE),
                SilenceAlert("inc-nope", 600, ALICE)):
        with pytest.raises(NotFound, match="inc-nope"):
            await bus(store, clock, silencer=RecordingSilencer()).handle(cmd)
    assert store.events == []


async def test_silence_uses_the_incident_labels_and_records_the_silence(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, _ = await incident_with_proposal(store)
    silencer = RecordingSilencer()
    result = await bus(store, clock, silencer=silencer).handle(
        SilenceAlert(incident, 3600, ALICE, "maintenance"))
    [req] = silencer.requests
    assert req.kind == ActionKind.SILENCE_ALERT and req.params == {"duration_s": 3600}
    assert req.labels and req.labels.get("alertname") == "TargetDown"
    assert result.event.type == EventType.ALERT_SILENCED and result.event.actor == ALICE
    assert result.event.data["silence_id"] == "sil-1"
    assert result.event.data["duration_s"] == 3600


async def test_silence_without_alertmanager_or_when_it_fails(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, _ = await incident_with_proposal(store)
    before = len(store.events)
    with pytest.raises(Conflict, match="no Alertmanager is configured"):
        await bus(store, clock).handle(SilenceAlert(incident, 600, ALICE))
    with pytest.raises(Unavailable, match="alertmanager unreachable"):
        await bus(store, clock, silencer=RecordingSilencer(ok=False)).handle(
            SilenceAlert(incident, 600, ALICE))
    assert len(store.events) == before  # nothing recorded when nothing was silenced


class MovingStore(InMemoryEventStore):
    """Appends ``interloper`` (another writer: the pipeline, another operator, another
    replica) right after the command's first read of the incident, before it appends."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.interloper: NewEvent | None = None
        self.reads = 0

    async def get_incident(self, incident_id: str) -> dict[str, object] | None:
        row = await super().get_incident(incident_id)
        self.reads += 1
        if self.interloper is not None:
            new, self.interloper = self.interloper, None
            await self.append([new])
        return row


async def test_a_command_decided_on_a_stale_read_is_decided_again(clock: Clock) -> None:
    store = MovingStore(clock)
    incident, _ = await incident_with_proposal(store)
    store.interloper = NewEvent.of(ev.IncidentResolved(reason="cleared", manual=True), BOB,
                                   incident)
    # Alice read the incident open; Bob resolved it before her acknowledgement was appended:
    # hers is decided again on the new state, not appended on the old one.
    with pytest.raises(Conflict, match="resolved: nothing to acknowledge"):
        await bus(store, clock).handle(Acknowledge(incident, ALICE))
    types = [e.type for e in await store.list_events(incident_id=incident, limit=1000)]
    assert EventType.INCIDENT_ACKNOWLEDGED not in types
    assert types.count(EventType.INCIDENT_RESOLVED) == 1


async def test_a_log_moved_by_the_pipeline_does_not_refuse_the_command(clock: Clock) -> None:
    store = MovingStore(clock)
    incident, _ = await incident_with_proposal(store)
    store.interloper = NewEvent.of(ev.NoteAdded(text="the pipeline moved on"), Actor.AGENT,
                                   incident)
    result = await bus(store, clock).handle(Acknowledge(incident, ALICE))
    assert result.event.type == EventType.INCIDENT_ACKNOWLEDGED
    assert store.reads >= 2  # read again after the log moved, then appended
