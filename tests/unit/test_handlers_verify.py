"""The verify and breaker handlers, alone, on the in-memory store.

Prometheus unreachable is read through the real Prometheus adapter pointed at a closed port:
the result is inconclusive, never a pass.
"""

from __future__ import annotations

import socket

from sre_agent.domain.actions import ActionStatus
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.evidence import Evidence, EvidenceStatus
from sre_agent.evidence.prometheus import PrometheusEvidence
from sre_agent.pipeline.handlers import Deps, Step, StepKind
from sre_agent.pipeline.handlers.breaker import breaker
from sre_agent.pipeline.handlers.verify import verify
from tests.support.fakes import FakeVerifier
from tests.support.handlers import Clock, context, incident_with_proposal, make_deps
from tests.support.memory_store import InMemoryEventStore
from tests.support.payloads import alert, notification


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def cleared(expr: str) -> Evidence:
    return Evidence(source="prometheus", name=expr, status=EvidenceStatus.NO_DATA)


async def succeeded(store: InMemoryEventStore, **kw: object) -> tuple[str, str]:
    incident, aid = await incident_with_proposal(store, **kw)  # type: ignore[arg-type]
    await store.append([
        NewEvent.of(ev.ActionStarted(action_id=aid, reason="x"), Actor.AGENT, incident),
        NewEvent.of(ev.ActionSucceeded(action_id=aid, result={"ok": True}), Actor.AGENT,
                    incident)])
    return incident, aid


async def run_verify(store: InMemoryEventStore, incident: str, aid: str, deps: Deps) -> None:
    row = await store.get_action(aid)
    assert row is not None
    await verify(Step(StepKind.VERIFY, aid), row, await context(store, incident, deps))


async def test_recovered_and_cleared_passes(store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await succeeded(store)
    await run_verify(store, incident, aid, make_deps(query=cleared, clock=clock))
    assert store.types()[-1] == EventType.VERIFICATION_PASSED
    assert store.statuses()[aid] == ActionStatus.VERIFIED
    assert (await store.gate_history(clock.now, 3600)).track_record == {
        ("TargetDown", "restart_container"): (1, 1)}


async def test_failed_verification_escalates_and_proposes_a_retry(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await succeeded(store)
    await run_verify(store, incident, aid, make_deps(verifier=FakeVerifier(ok=False),
                                                     clock=clock, max_attempts=2))
    assert store.types()[-3:] == [EventType.VERIFICATION_FAILED, EventType.INCIDENT_ESCALATED,
                                  EventType.ACTION_PROPOSED]
    retry = store.events[-1].payload
    assert isinstance(retry, ev.ActionProposed) and retry.idempotency_key.endswith(":2")
    assert (await store.gate_history(clock.now, 3600)).failures_by_target == {
        "web": [clock.now]}


async def test_prometheus_unreachable_is_inconclusive_never_a_pass(
        store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await succeeded(store)
    prometheus = PrometheusEvidence(f"http://127.0.0.1:{closed_port()}", timeout_s=1.0)
    await run_verify(store, incident, aid, make_deps(query=prometheus.query, clock=clock,
                                                     verify_deadline_s=1.0, verify_stable_s=0.2,
                                                     max_attempts=2))
    assert store.types()[-2:] == [EventType.VERIFICATION_INCONCLUSIVE,
                                  EventType.INCIDENT_ESCALATED]
    result = store.events[-2].payload
    assert isinstance(result, ev.VerificationInconclusive)
    assert result.result.status == "inconclusive" and result.result.ok is False
    assert "Prometheus unavailable" in (result.result.error or "")
    assert store.statuses()[aid] == ActionStatus.VERIFICATION_INCONCLUSIVE
    hist = await store.gate_history(clock.now, 3600)
    assert hist.failures_by_target == {}  # not a failure for the breaker ...
    assert hist.track_record == {("TargetDown", "restart_container"): (1, 0)}  # ... nor a pass
    assert EventType.ACTION_PROPOSED not in store.types()[-2:]  # and no blind retry


async def test_notifications_are_not_verified(store: InMemoryEventStore, clock: Clock) -> None:
    incident, aid = await succeeded(store, kind=ActionKind.NOTIFY, target=None)
    await run_verify(store, incident, aid, make_deps(clock=clock))
    assert store.types()[-1] == EventType.ACTION_SUCCEEDED


async def test_breaker_trips_on_the_third_failure_and_only_once(
        store: InMemoryEventStore, clock: Clock) -> None:
    deps = make_deps(clock=clock, breaker_failures=3)
    for i in range(3):
        incident, aid = await incident_with_proposal(
            store, body=notification([alert(fingerprint=f"fp{i}")], group_key=f"g{i}"))
        await store.append([NewEvent.of(ev.ActionFailed(action_id=aid, result={"ok": False}),
                                        Actor.AGENT, incident)])
        row = await store.get_action(aid)
        assert row is not None
        out = await breaker(Step(StepKind.BREAKER, aid), row,
                            await context(store, incident, deps))
        assert (len(out) == 1) == (i == 2)
    assert store.breakers["web"]["state"] == "open"
    assert await breaker(Step(StepKind.BREAKER, aid), row,
                         await context(store, incident, deps)) == []
