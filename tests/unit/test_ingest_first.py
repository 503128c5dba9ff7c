"""Ingest before analysis: a stage waits while a webhook is in flight, for at most max_defer_s,
and not at all when none is (pipeline/priority.py)."""

from __future__ import annotations

import asyncio

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.pipeline.priority import IngestFirst
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import EventStore
from tests.support.memory_store import InMemoryEventStore
from tests.support.payloads import alert, notification


class Clocked:
    name = "clocked"

    def __init__(self) -> None:
        self.started: list[float] = []

    async def run(self, work: IncidentWork, store: EventStore) -> None:
        self.started.append(asyncio.get_running_loop().time())


async def _incident(store: InMemoryEventStore) -> str:
    result = await store.ingest(WebhookNotification.model_validate(
        notification([alert(fingerprint="fp-gate")], group_key="g-gate")))
    return result.touched[0]


async def test_no_webhook_in_flight_means_no_wait() -> None:
    gate = IngestFirst(max_defer_s=5.0)
    await asyncio.wait_for(gate.wait_turn(), 0.5)
    assert gate.deferred_s == 0.0


async def test_a_stage_starts_when_the_webhook_in_flight_is_answered() -> None:
    store = InMemoryEventStore()
    gate = IngestFirst(max_defer_s=5.0)
    stage = Clocked()
    runner = PipelineRunner(store, [stage], ingest_first=gate)
    incident = await _incident(store)
    loop = asyncio.get_running_loop()
    gate.enter()
    gate.enter()  # two webhooks in flight: the stage waits for both
    await runner.start()
    runner.submit(incident)
    await asyncio.sleep(0.2)
    assert stage.started == []  # held back while they are in flight
    gate.leave()
    await asyncio.sleep(0.1)
    assert stage.started == []
    answered = loop.time()
    gate.leave()
    await runner.wait_idle(5)
    await runner.stop()
    assert len(stage.started) == 1 and stage.started[0] >= answered
    assert gate.in_flight == 0 and gate.deferred_s >= 0.3


async def test_a_flood_of_webhooks_slows_analysis_but_never_stops_it() -> None:
    store = InMemoryEventStore()
    gate = IngestFirst(max_defer_s=0.1)
    stage = Clocked()
    runner = PipelineRunner(store, [stage, stage], ingest_first=gate)
    incident = await _incident(store)
    gate.enter()  # never answered: a flood that does not end
    started = asyncio.get_running_loop().time()
    await runner.start()
    runner.submit(incident)
    await runner.wait_idle(5)
    await runner.stop()
    assert len(stage.started) == 2
    assert stage.started[0] - started >= 0.1 and stage.started[1] - stage.started[0] >= 0.1


async def test_zero_max_defer_never_waits() -> None:
    gate = IngestFirst(max_defer_s=0)
    gate.enter()
    await asyncio.wait_for(gate.wait_turn(), 0.05)
    assert gate.deferred_s == 0.0
