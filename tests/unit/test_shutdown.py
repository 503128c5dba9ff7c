"""Shutdown ends: a step stuck on a call that ignores cancellation is left behind after its bound,
and the runner stops what its stages started and leaves no retry scheduled."""

from __future__ import annotations

import asyncio
import time

from sre_agent.api.app import bounded
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import EventStore
from tests.support.memory_store import InMemoryEventStore
from tests.support.payloads import alert, notification


async def test_a_stuck_shutdown_step_is_left_behind_after_its_bound() -> None:
    release = asyncio.Event()
    cancels = 0

    async def ignores_cancellation() -> None:
        nonlocal cancels
        while not release.is_set():
            try:
                await release.wait()
            except asyncio.CancelledError:
                cancels += 1  # what a stuck call looks like from here

    started = time.monotonic()
    try:
        await bounded("stuck", ignores_cancellation(), timeout_s=0.2)
        elapsed = time.monotonic() - started
        await asyncio.sleep(0.05)  # the cancellation is delivered when the task next runs
        assert elapsed < 5 and cancels == 1
    finally:
        release.set()  # let it end, or the loop's own teardown would wait for it forever
        await asyncio.sleep(0.05)


async def test_a_failing_shutdown_step_does_not_stop_the_next() -> None:
    async def fails() -> None:
        raise RuntimeError("boom")

    await bounded("fails", fails(), timeout_s=1)  # logged, not raised


class Stuck:
    """A stage whose run never ends, and that has background work of its own to stop."""

    name = "stuck"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.stopped = False

    async def run(self, work: IncidentWork, store: EventStore) -> None:
        self.started.set()
        await asyncio.Event().wait()

    async def stop(self) -> None:
        self.stopped = True


async def test_stop_cancels_runs_stops_stages_and_leaves_no_retry() -> None:
    store = InMemoryEventStore()
    stage = Stuck()
    runner = PipelineRunner(store, [stage], sweep_s=3600)
    await runner.start()
    result = await store.ingest(WebhookNotification.model_validate(
        notification([alert(fingerprint="fp-stop")], group_key="g-stop")))
    runner.submit(result.touched[0])
    await asyncio.wait_for(stage.started.wait(), 5)
    await asyncio.wait_for(runner.stop(), 5)
    assert stage.stopped
    # The cancelled run's cleanup schedules a retry; a stopped runner must not keep it.
    assert runner._retries == {}
