"""The act and reconcile handlers, alone, on the in-memory store."""

from __future__ import annotations

from sre_agent.domain.actions import ActionStatus
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.policy import Decision, Outcome, ReasonCode
from sre_agent.domain.results import ActionRequest, ActionResult
from sre_agent.pipeline.handlers import Step, StepKind
from sre_agent.pipeline.handlers.act import act, reconcile
from tests.support.fakes import FakeBackend
from tests.support.handlers import Clock, context, incident_with_proposal, make_deps
from tests.support.memory_store import InMemoryEventStore
from tests.support.payloads import alert, notification

ALLOWED = Decision(Outcome.EXECUTE, ReasonCode.AUTONOMOUS, "autonomous: all checks passed")


class StatusAtCallBackend(FakeBackend):
    """Records the action's status in the store at the moment the backend is called."""

    def __init__(self, store: InMemoryEventStore) -> None:
        super().__init__()
        self.store = store
        self.seen: list[str] = []

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.seen.append(self.store.statuses()[request.action_id])
        return await super().execute(request)


async def test_action_started_is_durable_before_the_backend_runs_once(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await incident_with_proposal(store)
    backend = StatusAtCallBackend(store)
    ctx = await context(store, incident, make_deps(backend=backend, clock=clock))
    row = await store.get_action(aid)
    assert row is not None
    out = await act(Step(StepKind.ACT, aid, ALLOWED), row, ctx)
    assert backend.seen == [ActionStatus.RUNNING]
    assert [getattr(e, "type", None) for e in out] == [EventType.ACTION_STARTED,
                                                        EventType.ACTION_SUCCEEDED]
    started = store.events[-2].payload
    assert isinstance(started, ev.ActionStarted) and started.reason == ALLOWED.reason
    # Once it ran, the guard refuses a second run of the same action.
    assert await act(Step(StepKind.ACT, aid, ALLOWED), row, ctx) == []
    assert len(backend.executed) == 1


async def test_an_action_moved_on_meanwhile_never_runs(store: InMemoryEventStore,
                                                       clock: Clock) -> None:
    incident, aid = await incident_with_proposal(store)
    await store.append([NewEvent.of(ev.ActionRejected(action_id=aid, reason="no"),
                                    Actor.operator("bob"), incident)])
    backend = FakeBackend()
    ctx = await context(store, incident, make_deps(backend=backend, clock=clock))
    row = await store.get_action(aid)
    assert row is not None
    assert await act(Step(StepKind.ACT, aid, ALLOWED), row, ctx) == []
    assert backend.executed == []


async def test_a_failing_backend_records_a_failed_status(store: InMemoryEventStore,
                                                         clock: Clock) -> None:
    incident, aid = await incident_with_proposal(store)
    ctx = await context(store, incident, make_deps(backend=FakeBackend(ok=False), clock=clock))
    row = await store.get_action(aid)
    assert row is not None
    await act(Step(StepKind.ACT, aid, ALLOWED), row, ctx)
    failed = store.events[-1].payload
    assert isinstance(failed, ev.ActionFailed)
    assert failed.result.status == "failed" and failed.result.error == "fake failure"
    assert store.statuses()[aid] == ActionStatus.FAILED


async def _left_running(store: InMemoryEventStore, n: int = 0) -> tuple[str, str]:
    incident, aid = await incident_with_proposal(
        store, body=notification([alert(fingerprint=f"fp{n}")], group_key=f"g{n}"))
    await store.append([NewEvent.of(ev.ActionStarted(action_id=aid, reason="x"), Actor.AGENT,
                                    incident)])
    return incident, aid


async def test_reconcile_took_effect_is_a_success_never_a_repeat(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await _left_running(store)
    backend = FakeBackend(took_effect=True)
    ctx = await context(store, incident, make_deps(backend=backend, clock=clock))
    row = await store.get_action(aid)
    assert row is not None
    await reconcile(Step(StepKind.RECONCILE, aid), row, ctx)
    done = store.events[-1].payload
    assert isinstance(done, ev.ActionSucceeded) and done.result.reconciled
    assert done.result.reconcile == "took_effect"
    assert backend.executed == [] and len(backend.reconciled) == 1


async def test_reconcile_no_effect_or_unknown_is_a_failure_with_the_reason(
        store: InMemoryEventStore, clock: Clock) -> None:
    for took_effect, status, words in ((False, "no_effect", "did not take effect"),
                                       (None, "unknown", "outcome unknown")):
        incident, aid = await _left_running(store, int(took_effect is None))
        ctx = await context(store, incident, make_deps(
            backend=FakeBackend(took_effect=took_effect), clock=clock))
        row = await store.get_action(aid)
        assert row is not None
        await reconcile(Step(StepKind.RECONCILE, aid), row, ctx)
        failed = store.events[-1].payload
        assert isinstance(failed, ev.ActionFailed)
        assert failed.result.reconcile == status and words in (failed.result.error or "")
