"""The gate and expire handlers, alone, on the in-memory store."""

from __future__ import annotations

from typing import Any

from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import Mode
from sre_agent.domain.policy import ReasonCode
from sre_agent.pipeline.handlers import Step, StepKind
from sre_agent.pipeline.handlers.base import Output
from sre_agent.pipeline.handlers.gate import expire, gate
from sre_agent.ports import EventStore
from tests.support.handlers import Clock, context, incident_with_proposal, make_deps
from tests.support.memory_store import InMemoryEventStore


def test_the_memory_store_implements_the_port(store: InMemoryEventStore) -> None:
    port: EventStore = store
    assert port is store


async def run_gate(store: InMemoryEventStore, clock: Clock, *,
                   proposal: dict[str, Any] | None = None, **deps: Any) -> tuple[Output, str]:
    incident, aid = await incident_with_proposal(store, **(proposal or {}))
    ctx = await context(store, incident, make_deps(clock=clock, **deps))
    row = await store.get_action(aid)
    assert row is not None
    return await gate(Step(StepKind.GATE, aid), row, ctx), aid


async def test_allowed_action_becomes_an_act_step_and_records_nothing_yet(
        store: InMemoryEventStore, clock: Clock) -> None:
    out, aid = await run_gate(store, clock)
    assert len(out) == 1 and isinstance(out[0], Step)
    assert out[0].kind == StepKind.ACT and out[0].action_id == aid
    assert out[0].decision is not None and out[0].decision.code == ReasonCode.AUTONOMOUS
    # Nothing recorded yet: ActionStarted is the act handler's, appended guarded.
    assert store.types()[-1] == EventType.ACTION_PROPOSED


async def test_out_of_scope_container_is_blocked_with_its_code_and_escalates(
        store: InMemoryEventStore, clock: Clock) -> None:
    _, aid = await run_gate(store, clock, proposal={"labels": {}})
    blocked = store.events[-2]
    assert isinstance(blocked.payload, ev.ActionBlocked)
    assert blocked.payload.code == ReasonCode.OUT_OF_SCOPE
    assert store.events[-1].type == EventType.INCIDENT_ESCALATED
    assert store.statuses()[aid] == "blocked"


async def test_paused_blocks_and_escalates_once_per_incident(
        store: InMemoryEventStore, clock: Clock) -> None:
    """Paused is not routine: a human must hear that the agent wanted to act and could not."""
    await store.append([NewEvent.of(ev.Paused(reason="maintenance"), Actor.operator("a"))])
    incident, first = await incident_with_proposal(store)
    _, second = await incident_with_proposal(store, incident=incident, target="db")
    ctx = await context(store, incident, make_deps(clock=clock))
    for aid in (first, second):
        row = await store.get_action(aid)
        assert row is not None
        await gate(Step(StepKind.GATE, aid), row, ctx)
    blocked = [e for e in store.events if e.type == EventType.ACTION_BLOCKED]
    assert [e.data["code"] for e in blocked] == [ReasonCode.PAUSED, ReasonCode.PAUSED]
    assert store.types().count(EventType.INCIDENT_ESCALATED) == 1


async def test_routine_refusals_do_not_escalate(store: InMemoryEventStore, clock: Clock) -> None:
    await run_gate(store, clock, mode=Mode.OBSERVE)
    assert store.events[-1].data["code"] == ReasonCode.OBSERVE_MODE
    assert EventType.INCIDENT_ESCALATED not in store.types()


async def test_breaker_and_rate_limit_refusals_escalate(
        store: InMemoryEventStore, clock: Clock) -> None:
    await store.append([NewEvent.of(ev.BreakerTripped(target="web", reason="3 failures"),
                                    Actor.AGENT)])
    await run_gate(store, clock)
    assert store.events[-2].data["code"] == ReasonCode.BREAKER_OPEN
    assert store.events[-1].type == EventType.INCIDENT_ESCALATED


async def test_a_pending_approval_of_a_resolved_incident_expires_at_once(
        store: InMemoryEventStore, clock: Clock) -> None:
    from sre_agent.domain.alertmanager import WebhookNotification
    from tests.support.payloads import alert, notification

    _, aid = await run_gate(store, clock, mode=Mode.APPROVAL, approval_ttl_s=600.0)
    incident = store.actions[aid]["incident_id"]
    await store.ingest(WebhookNotification.model_validate(
        notification([alert(status="resolved")])))
    deps = make_deps(clock=clock, mode=Mode.APPROVAL, approval_ttl_s=600.0)
    row = await store.get_action(aid)
    assert row is not None
    out = await expire(Step(StepKind.EXPIRE, aid), row, await context(store, incident, deps))
    assert [getattr(e, "type", None) for e in out] == [EventType.ACTION_EXPIRED]
    assert "resolved" in store.events[-1].data["reason"]


async def test_approval_mode_waits_with_an_expiry(store: InMemoryEventStore,
                                                  clock: Clock) -> None:
    _, aid = await run_gate(store, clock, mode=Mode.APPROVAL, approval_ttl_s=600.0)
    waiting = store.events[-1].payload
    assert isinstance(waiting, ev.ActionAwaitingApproval)
    assert waiting.expires_ts == clock.now + 600.0
    assert waiting.code == ReasonCode.APPROVAL_MODE
    assert store.statuses()[aid] == "pending_approval"


async def test_dry_run_records_and_does_not_act(store: InMemoryEventStore,
                                                clock: Clock) -> None:
    out, _ = await run_gate(store, clock, mode=Mode.DRY_RUN)
    assert store.events[-1].type == EventType.ACTION_DRY_RUN
    assert not any(isinstance(o, Step) for o in out)


async def test_no_backend_for_the_kind_is_refused_before_the_gate(
        store: InMemoryEventStore, clock: Clock) -> None:
    await run_gate(store, clock, proposal={"kind": ActionKind.SILENCE_ALERT, "target": None})
    assert store.events[-1].data["code"] == ReasonCode.NO_BACKEND


async def test_expire_only_after_the_window(store: InMemoryEventStore, clock: Clock) -> None:
    _, aid = await run_gate(store, clock, mode=Mode.APPROVAL, approval_ttl_s=600.0)
    incident = store.actions[aid]["incident_id"]
    deps = make_deps(clock=clock, mode=Mode.APPROVAL, approval_ttl_s=600.0)
    row = await store.get_action(aid)
    assert row is not None
    assert await expire(Step(StepKind.EXPIRE, aid), row, await context(store, incident, deps)) \
        == []
    clock.now += 601
    out = await expire(Step(StepKind.EXPIRE, aid), row, await context(store, incident, deps))
    assert [getattr(e, "type", None) for e in out] == [EventType.ACTION_EXPIRED]
    assert store.events[-1].actor == Actor.SYSTEM
    assert store.statuses()[aid] == "expired"
