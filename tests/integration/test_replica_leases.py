"""Lease takeover between two runners on one real PostgreSQL database, without the sweep.

Every replica looks for leases that ran out about once a second: when the holder died, the
incident is taken over within about one TTL of its last renewal, whatever ``resume_sweep_s`` is
(here 60 s, longer than the test), even by a replica to which the incident was never submitted
(its copy of the alert was a duplicate, and duplicates do not submit).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.store.sql import SqlEventStore
from tests.integration.test_replicas import SlowStage
from tests.support.payloads import notification

pytestmark = pytest.mark.integration


async def test_a_dead_holders_incident_is_taken_over_at_lease_expiry_not_at_the_sweep(
        pg_cluster: Any) -> None:
    url = pg_cluster.create_database()
    a_store, b_store = SqlEventStore(url), SqlEventStore(url)
    ran: list[str] = []
    a = PipelineRunner(a_store, [SlowStage("A", ran, 30)], workers=1, leases=True,
                       lease_ttl_s=2, owner="A", sweep_s=60)
    b = PipelineRunner(b_store, [SlowStage("B", ran, 0)], workers=1, leases=True,
                       lease_ttl_s=2, owner="B", sweep_s=60)
    try:
        result = await a_store.ingest(WebhookNotification.model_validate(notification()))
        (incident,) = result.touched
        await a.start()
        a.submit(incident)
        for _ in range(100):
            if ran:
                break
            await asyncio.sleep(0.05)
        await b.start()
        # B never had the incident submitted: its copy of the alert was a duplicate.
        await asyncio.sleep(2.5)  # longer than one TTL: A renews, so B keeps waiting
        assert ran == ["A"]
        # A stops mid-run holding the lease (a shutdown cancels its tasks; kill -9 would not
        # even do that): the lease is left to run out.
        for task in a._tasks:
            task.cancel()
        await asyncio.gather(*a._tasks, return_exceptions=True)
        died = time.monotonic()
        for _ in range(400):
            if "B" in ran:
                break
            await asyncio.sleep(0.05)
        took = time.monotonic() - died
        assert ran == ["A", "B"]
        assert took < 2 + 1.5, took  # one TTL after A's last renewal, plus slack; no sweep
        for _ in range(100):
            if not await b_store.pending_incidents():
                break
            await asyncio.sleep(0.05)
        assert await b_store.pending_incidents() == []
    finally:
        await b.stop()
        await a_store.close()
        await b_store.close()
