"""Ingest before analysis (ingest_first.py): background work waits while a webhook is in
flight, for at most max_defer_s; foreground work and quiet moments never wait; the runner's
workers are background work, and so are the tasks they start."""

from __future__ import annotations

import asyncio

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.ingest_first import IngestFirst, run_in_background, yield_to_ingest
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import EventStore
from tests.support.memory_store import InMemoryEventStore
from tests.support.payloads import alert, notification


async def _background(gate: IngestFirst) -> float:
    run_in_background(gate)
    return await yield_to_ingest()


async def test_no_webhook_in_flight_means_no_wait() -> None:
    gate = IngestFirst(max_defer_s=5.0)
    assert await asyncio.wait_for(asyncio.create_task(_background(gate)), 0.5) == 0.0
    assert gate.deferred_s == 0.0


async def test_background_work_waits_until_the_last_webhook_is_answered() -> None:
    gate = IngestFirst(max_defer_s=5.0)
    gate.enter()
    gate.enter()  # two webhooks in flight
    waiting = asyncio.create_task(_background(gate))
    await asyncio.sleep(0.1)
    gate.leave()
    await asyncio.sleep(0.1)
    assert not waiting.done()  # one is still in flight
    gate.leave()
    waited = await asyncio.wait_for(waiting, 1.0)
    assert waited >= 0.2 and gate.deferred_s == waited and gate.in_flight == 0


async def test_foreground_work_never_waits() -> None:
    gate = IngestFirst(max_defer_s=5.0)
    gate.enter()
    assert await asyncio.wait_for(yield_to_ingest(), 0.1) == 0.0  # this task is not marked


async def test_a_flood_slows_background_work_but_never_stops_it() -> None:
    gate = IngestFirst(max_defer_s=0.1)
    gate.enter()  # never answered: a flood that does not end
    waited = await asyncio.wait_for(asyncio.create_task(_background(gate)), 1.0)
    assert 0.1 <= waited < 0.5


async def test_zero_max_defer_never_waits() -> None:
    gate = IngestFirst(max_defer_s=0)
    gate.enter()
    assert await asyncio.wait_for(asyncio.create_task(_background(gate)), 0.05) == 0.0


class YieldingStage:
    """Calls what the store calls before each read and write, in the stage and in a task the
    stage starts (as evidence collection does)."""

    name = "yielding"

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def run(self, work: IncidentWork, store: EventStore) -> None:
        self.waits.append(await yield_to_ingest())
        self.waits.append(await asyncio.create_task(yield_to_ingest()))


async def test_the_runners_workers_are_background_work() -> None:
    store = InMemoryEventStore()
    gate = IngestFirst(max_defer_s=0.1)
    stage = YieldingStage()
    runner = PipelineRunner(store, [stage], ingest_first=gate)
    result = await store.ingest(WebhookNotification.model_validate(
        notification([alert(fingerprint="fp-gate")], group_key="g-gate")))
    gate.enter()  # a webhook stays in flight throughout
    await runner.start()
    runner.submit(result.touched[0])
    await runner.wait_idle(5)
    await runner.stop()
    assert len(stage.waits) == 2 and all(w >= 0.1 for w in stage.waits)


def test_one_gate_serves_one_event_loop_after_another() -> None:
    """An app may run its lifespan under several loops in turn (test clients do): the gate
    binds to none of them."""
    gate = IngestFirst(max_defer_s=5.0)

    async def once() -> float:
        gate.enter()
        waiting = asyncio.create_task(_background(gate))
        await asyncio.sleep(0.05)
        gate.leave()
        return await asyncio.wait_for(waiting, 1.0)

    assert [asyncio.run(once()) >= 0.05 for _ in range(2)] == [True, True]
