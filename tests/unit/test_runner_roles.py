"""The runner in each role, on the in-memory store: an api replica's runner runs nothing; a
polling runner (a worker) finds work another process stored, and leaves leased work alone."""

from __future__ import annotations

import asyncio

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import EventStore
from tests.support.memory_store import InMemoryEventStore
from tests.support.payloads import alert, notification


class Recorder:
    name = "record"

    def __init__(self) -> None:
        self.ran: list[str] = []

    async def run(self, work: IncidentWork, store: EventStore) -> None:
        self.ran.append(work.id)


async def _ingest(store: InMemoryEventStore, fingerprint: str) -> str:
    result = await store.ingest(WebhookNotification.model_validate(
        notification([alert(fingerprint=fingerprint)], group_key=f"g-{fingerprint}")))
    (incident,) = result.touched
    return incident


async def test_an_inactive_runner_runs_nothing_and_a_polling_one_finds_the_work() -> None:
    store = InMemoryEventStore()
    stage = Recorder()
    api = PipelineRunner(store, [stage], active=False, leases=True, poll_s=0.05, sweep_s=0.05)
    worker = PipelineRunner(store, [stage], leases=True, poll_s=0.05, sweep_s=3600,
                            owner="worker")
    first = await _ingest(store, "fp-first")
    await api.start()
    api.submit(first)  # what the webhook route does: a no-op on an api replica
    await asyncio.sleep(0.2)
    assert stage.ran == [] and api.backlog == 0 and await store.pending_incidents() == [first]
    await worker.start()  # its start-up resume finds the first; its poll finds the next
    second = await _ingest(store, "fp-second")
    for _ in range(40):
        if not await store.pending_incidents():
            break
        await asyncio.sleep(0.05)
    await worker.stop()
    await api.stop()
    assert sorted(stage.ran) == sorted([first, second])
    assert await store.pending_incidents() == []


async def test_a_poll_leaves_an_incident_leased_elsewhere_alone() -> None:
    store = InMemoryEventStore()
    stage = Recorder()
    incident = await _ingest(store, "fp-held")
    now = 1_800_000_000.0
    assert await store.claim(incident, "other", 30, now)
    worker = PipelineRunner(store, [stage], leases=True, poll_s=0.05, owner="worker",
                            clock=lambda: now + 1)
    assert await worker.resume(polling=True) == 0  # not even queued: no claim churn
    assert await store.pending_incidents(unleased_at=now + 31) == [incident]  # ran out
    assert await worker.resume() == 1  # the sweep still tries it (and its claim fails)
