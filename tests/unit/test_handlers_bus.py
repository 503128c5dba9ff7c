"""The dispatcher: each action's status starts a step, each appended event the next one."""

from __future__ import annotations

from sre_agent.domain.actions import ActionStatus
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import Mode
from sre_agent.pipeline.handlers import HANDLERS, Context, Remediation, Step, StepKind
from sre_agent.pipeline.stages import load_work
from tests.support.fakes import FakeBackend, FakeVerifier
from tests.support.handlers import Clock, incident_with_proposal, make_deps
from tests.support.memory_store import InMemoryEventStore


async def run(store: InMemoryEventStore, incident: str, stage: Remediation) -> None:
    work = await load_work(store, incident)
    assert work is not None
    await stage.run(work, store)


def test_every_step_has_one_handler() -> None:
    assert set(HANDLERS) == set(StepKind)


async def test_a_proposal_is_gated_run_and_verified_in_one_pass(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await incident_with_proposal(store)
    backend = FakeBackend()
    await run(store, incident, Remediation(make_deps(backend=backend, clock=clock)))
    assert store.types(incident)[-3:] == [EventType.ACTION_STARTED, EventType.ACTION_SUCCEEDED,
                                          EventType.VERIFICATION_PASSED]
    assert store.statuses()[aid] == ActionStatus.VERIFIED
    # Idempotent over the log: a second pass finds nothing to do.
    before = len(store.events)
    await run(store, incident, Remediation(make_deps(backend=backend, clock=clock)))
    assert len(store.events) == before and len(backend.executed) == 1


async def test_an_approval_leads_to_act(store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await incident_with_proposal(store)
    stage = Remediation(make_deps(clock=clock, mode=Mode.APPROVAL))
    await run(store, incident, stage)
    assert store.statuses()[aid] == ActionStatus.PENDING_APPROVAL
    await store.append([NewEvent.of(ev.ActionApproved(action_id=aid, reason="go"),
                                    Actor.operator("alice"), incident)])
    await run(store, incident, stage)
    assert store.statuses()[aid] == ActionStatus.VERIFIED


async def test_failed_verification_retries_within_the_pass_up_to_max_attempts(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, _ = await incident_with_proposal(store)
    backend = FakeBackend()
    await run(store, incident, Remediation(make_deps(
        backend=backend, verifier=FakeVerifier(ok=False), clock=clock, max_attempts=2,
        cooldown_s=0.0)))
    assert len(backend.executed) == 2
    assert sorted(store.statuses().values()) == [ActionStatus.VERIFICATION_FAILED] * 2


async def test_a_left_over_running_action_is_reconciled_then_verified(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await incident_with_proposal(store)
    await store.append([NewEvent.of(ev.ActionStarted(action_id=aid, reason="x"), Actor.AGENT,
                                    incident)])
    backend = FakeBackend(took_effect=True)
    await run(store, incident, Remediation(make_deps(backend=backend, clock=clock)))
    assert backend.executed == []
    assert store.statuses()[aid] == ActionStatus.VERIFIED


async def test_a_step_whose_action_moved_on_is_dropped(store: InMemoryEventStore,
                                                       clock: Clock) -> None:
    incident, aid = await incident_with_proposal(store)
    # In approval mode a gate run on the stale row would append ActionAwaitingApproval.
    stage = Remediation(make_deps(clock=clock, mode=Mode.APPROVAL))
    work = await load_work(store, incident)
    assert work is not None
    await store.append([NewEvent.of(ev.ActionBlocked(action_id=aid, reason="by hand"),
                                    Actor.operator("alice"), incident)])
    await stage.dispatch(Step(StepKind.GATE, aid), Context(work, store, stage.deps))
    assert store.types(incident)[-1] == EventType.ACTION_BLOCKED
    assert store.statuses()[aid] == ActionStatus.BLOCKED
