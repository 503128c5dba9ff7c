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
