"""The inbox drainer on the in-memory store: order, hand-off, unreadable rows, store outages."""

from __future__ import annotations

import asyncio
import json

from sre_agent.observability import Metrics
from sre_agent.pipeline.inbox import InboxDrainer
from tests.support.memory_store import InMemoryEventStore
from tests.support.payloads import alert, notification


def body(group: str) -> str:
    return json.dumps(notification([alert(fingerprint=f"fp-{group}")], group_key=group))


async def test_drains_oldest_first_and_hands_each_new_incident_to_the_pipeline() -> None:
    store = InMemoryEventStore()
    submitted: list[str] = []
    drainer = InboxDrainer(store, submitted.append, Metrics(), batch=2)
    for group in ("g1", "g2", "g3"):
        await store.enqueue(body(group))
    await store.enqueue(body("g1"))  # a redelivery: a duplicate, no new incident
    assert await drainer.drain() == 4
    assert store.inbox == {}
    groups = [store.incidents[i]["group_key"] for i in submitted]
    assert groups == ["g1", "g2", "g3"]
    assert await drainer.drain() == 0


async def test_an_unreadable_row_stays_queued_and_the_others_are_ingested() -> None:
    store = InMemoryEventStore()
    drainer = InboxDrainer(store, lambda _i: None, Metrics())
    bad = await store.enqueue('{"version": "4"}')  # not a notification this agent reads
    await store.enqueue(body("g1"))
    assert await drainer.drain() == 1
    assert list(store.inbox) == [bad]  # kept for an operator, not dropped
    assert await drainer.drain() == 0  # and not read again and again


async def test_a_store_outage_leaves_the_rows_queued_until_it_is_back() -> None:
    store = InMemoryEventStore()
    drainer = InboxDrainer(store, lambda _i: None, Metrics(), poll_s=0.01)
    await store.enqueue(body("g1"))
    store.unavailable = True
    await drainer.start()
    try:
        await asyncio.sleep(0.05)  # several failed drains
        assert len(store.inbox) == 1 and store.incidents == {}
        store.unavailable = False
        for _ in range(500):
            if not store.inbox:
                break
            await asyncio.sleep(0.01)
        assert len(store.incidents) == 1
    finally:
        await drainer.stop()


async def test_an_inactive_drainer_never_drains() -> None:
    store = InMemoryEventStore()
    drainer = InboxDrainer(store, lambda _i: None, Metrics(), poll_s=0.01, active=False)
    await store.enqueue(body("g1"))
    await drainer.start()
    drainer.notify()
    await asyncio.sleep(0.05)
    await drainer.stop()
    assert len(store.inbox) == 1
