"""Operator commands through the one command path, on the in-memory store."""

from __future__ import annotations

import pytest

from sre_agent.domain.actions import ActionStatus
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import Mode
from sre_agent.domain.policy import Policy
from sre_agent.pipeline.commands import (
    Approve,
    CommandBus,
    Conflict,
    ControlResult,
    NotFound,
    Pause,
    Reject,
    ResetBreaker,
    Resume,
    Retry,
    SetMode,
)
from tests.support.handlers import Clock, incident_with_proposal
from tests.support.memory_store import InMemoryEventStore

ALICE = Actor.operator("alice")


async def pending(store: InMemoryEventStore) -> tuple[str, str]:
    incident, aid = await incident_with_proposal(store)
    await store.append([NewEvent.of(ev.ActionAwaitingApproval(action_id=aid, reason="approval"),
                                    Actor.AGENT, incident)])
    return incident, aid


def bus(store: InMemoryEventStore, clock: Clock, submitted: list[str]) -> CommandBus:
    return CommandBus(store, Policy(approval_ttl_s=600.0), default_mode=Mode.APPROVAL,
                      submit=submitted.append, clock=clock)


async def test_approve_records_the_operator_and_hands_the_incident_on(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await pending(store)
    submitted: list[str] = []
    row = await bus(store, clock, submitted).handle(Approve(aid, ALICE, "go"))
    assert row["status"] == ActionStatus.APPROVED and row["decided_by"] == ALICE
    assert submitted == [incident]
    with pytest.raises(Conflict, match="not pending approval"):
        await bus(store, clock, submitted).handle(Reject(aid, ALICE))


async def test_reject_never_submits(store: InMemoryEventStore, clock: Clock) -> None:
    _, aid = await pending(store)
    submitted: list[str] = []
    row = await bus(store, clock, submitted).handle(Reject(aid, ALICE, "no"))
    assert row["status"] == ActionStatus.REJECTED and submitted == []


async def test_an_approval_after_the_window_expires_the_action(
        store: InMemoryEventStore, clock: Clock) -> None:
    _, aid = await pending(store)
    clock.now += 601
    with pytest.raises(Conflict, match="expired"):
        await bus(store, clock, []).handle(Approve(aid, ALICE))
    assert store.statuses()[aid] == ActionStatus.EXPIRED
    assert store.events[-1].actor == ALICE


async def test_unknown_action_and_closed_breaker_are_not_found(
        store: InMemoryEventStore, clock: Clock) -> None:
    with pytest.raises(NotFound):
        await bus(store, clock, []).handle(Approve("act-nope", ALICE))
    with pytest.raises(NotFound):
        await bus(store, clock, []).handle(ResetBreaker("web", ALICE))


async def test_reset_breaker_closes_an_open_one(store: InMemoryEventStore, clock: Clock) -> None:
    await store.append([NewEvent.of(ev.BreakerTripped(target="web", reason="3 failures"),
                                    Actor.AGENT)])
    row = await bus(store, clock, []).handle(ResetBreaker("web", ALICE, "fixed"))
    assert row["state"] == "closed" and store.events[-1].type == EventType.BREAKER_RESET


async def test_mode_and_kill_switch(store: InMemoryEventStore, clock: Clock) -> None:
    b = bus(store, clock, [])
    result: ControlResult = await b.handle(SetMode(Mode.DRY_RUN, ALICE, "testing"))
    assert result.state.mode == Mode.DRY_RUN and not result.state.paused
    assert (await b.handle(Pause(ALICE))).state.paused
    resumed = await b.handle(Resume(ALICE))
    assert not resumed.state.paused and resumed.seq == store.events[-1].seq


async def blocked(store: InMemoryEventStore, code: str, target: str = "web",
                  incident: str | None = None) -> tuple[str, str]:
    if incident is None and store.actions:
        incident = str(next(iter(store.actions.values()))["incident_id"])
    incident, aid = await incident_with_proposal(store, target=target, incident=incident)
    await store.append([NewEvent.of(ev.ActionBlocked(action_id=aid, reason=code, code=code),
                                    Actor.AGENT, incident)])
    return incident, aid


def proposals(store: InMemoryEventStore) -> list[ev.ActionProposed]:
    return [e.payload for e in store.events if isinstance(e.payload, ev.ActionProposed)]


async def test_resume_proposes_again_what_the_pause_blocked(
        store: InMemoryEventStore, clock: Clock) -> None:
    b_submitted: list[str] = []
    b = bus(store, clock, b_submitted)
    _, before = await blocked(store, "paused")  # blocked by an earlier pause: not this one
    await b.handle(Pause(ALICE, "maintenance"))
    incident, aid = await blocked(store, "paused")
    _, cooled = await blocked(store, "cooldown", target="db")  # not the pause's doing
    await b.handle(Resume(ALICE, "done"))
    again = proposals(store)[-1]
    assert len(proposals(store)) == 4
    assert again.target == "web" and again.kind == "restart_container"
    assert again.action_id not in (before, aid, cooled)
    assert again.idempotency_key != store.actions[aid]["idempotency_key"]
    assert "actions resumed" in again.reason and b_submitted == [incident]
    assert store.statuses()[again.action_id] == ActionStatus.PROPOSED
    assert store.events[-1].actor == ALICE


async def test_a_breaker_reset_proposes_again_what_it_blocked_for_that_target(
        store: InMemoryEventStore, clock: Clock) -> None:
    submitted: list[str] = []
    await store.append([NewEvent.of(ev.BreakerTripped(target="web", reason="3 failures"),
                                    Actor.AGENT)])
    incident, _ = await blocked(store, "breaker_open")
    await blocked(store, "breaker_open", target="db")  # another target's breaker
    await bus(store, clock, submitted).handle(ResetBreaker("web", ALICE, "fixed"))
    again = proposals(store)[-1]
    assert len(proposals(store)) == 3 and again.target == "web"
    assert submitted == [incident]


async def test_nothing_is_proposed_again_for_a_resolved_incident(
        store: InMemoryEventStore, clock: Clock) -> None:
    from sre_agent.domain.alertmanager import WebhookNotification
    from tests.support.payloads import alert, notification

    b = bus(store, clock, [])
    await b.handle(Pause(ALICE))
    await blocked(store, "paused")
    await store.ingest(WebhookNotification.model_validate(
        notification([alert(status="resolved")])))
    await b.handle(Resume(ALICE))
    assert len(proposals(store)) == 1


async def test_an_operator_retries_a_rejected_action_as_a_new_proposal(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await pending(store)
    submitted: list[str] = []
    b = bus(store, clock, submitted)
    await b.handle(Reject(aid, ALICE, "not now"))
    row = await b.handle(Retry(aid, ALICE, "now"))
    assert row["id"] != aid and row["status"] == ActionStatus.PROPOSED
    assert row["kind"] == "restart_container" and row["target"] == "web"
    assert "proposed again by operator:alice (now)" in row["reason"]
    assert submitted == [incident]
    assert store.statuses()[aid] == ActionStatus.REJECTED  # the old outcome stands
    with pytest.raises(Conflict, match="only a rejected"):
        await b.handle(Retry(row["id"], ALICE))  # still proposed: nothing to retry
    with pytest.raises(NotFound):
        await b.handle(Retry("act-nope", ALICE))


async def test_approving_after_the_incident_resolved_expires_it(
        store: InMemoryEventStore, clock: Clock) -> None:
    from sre_agent.domain.alertmanager import WebhookNotification
    from tests.support.payloads import alert, notification

    _, aid = await pending(store)
    await store.ingest(WebhookNotification.model_validate(
        notification([alert(status="resolved")])))
    with pytest.raises(Conflict, match="incident is resolved"):
        await bus(store, clock, []).handle(Approve(aid, ALICE))
    assert store.statuses()[aid] == ActionStatus.EXPIRED
    with pytest.raises(Conflict, match="resolved: nothing to fix"):
        await bus(store, clock, []).handle(Retry(aid, ALICE))
