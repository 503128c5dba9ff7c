"""Two replicas on one real PostgreSQL database: an incident's chat message is sent once (the
``delivery:`` lease), and the second replica's later sync finds it delivered; a sync slower
than the lease's TTL keeps its lease (renewed), and the messages of a replica that died
mid-sync are sent by another about a TTL later."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import pytest

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.notifications import Delivered, IncidentCard, Message, Sent, digest_of
from sre_agent.domain.routing import Destination, Routes
from sre_agent.pipeline.delivery import DeliveryWorker
from sre_agent.store.sql import SqlEventStore
from tests.support.payloads import notification
from tests.support.slack_clicks import eventually

pytestmark = pytest.mark.integration


class SlowDestination:
    name = Destination.SLACK

    def __init__(self, sent: list[str], delay_s: float = 0.5) -> None:
        self.sent = sent
        self.delay_s = delay_s

    def messages(self, card: IncidentCard, have: Mapping[str, Delivered]) -> list[Message]:
        body = {"summary": card.summary}
        return [Message("incident", "update" if "incident" in have else "post", body,
                        digest_of(body))] if card.diagnosed else []

    async def send(self, message: Message, have: Delivered | None) -> Sent:
        self.sent.append(message.op)
        await asyncio.sleep(self.delay_s)
        return Sent(ok=True, status_code=200, channel="C1", ts="1.1")

    async def close(self) -> None:
        pass


async def test_one_incident_is_delivered_by_one_replica(pg_cluster: Any) -> None:
    url = str(pg_cluster.create_database())
    a, b = SqlEventStore(url), SqlEventStore(url)
    try:
        result = await a.ingest(WebhookNotification.model_validate(notification()))
        iid = result.touched[0]
        await a.append([NewEvent.of(ev.DiagnosisProduced(summary="down"), Actor.AGENT, iid)])
        sent: list[str] = []
        workers = [DeliveryWorker(store, [SlowDestination(sent)], Routes.everything(
            [Destination.SLACK]), "u", leases=True, owner=f"replica-{n}")
            for n, store in enumerate((a, b))]
        await asyncio.gather(*(w.sync_leased(iid) for w in workers))
        assert sent == ["post"]
        await workers[1].sync_leased(iid)  # later: the lease is free, the message delivered
        assert sent == ["post"]
        done = await b.list_events(incident_id=iid, types=[EventType.NOTIFICATION_DELIVERED])
        assert len(done) == 1
    finally:
        await a.close()
        await b.close()


async def _diagnosed_incident(store: SqlEventStore) -> str:
    result = await store.ingest(WebhookNotification.model_validate(notification()))
    iid = result.touched[0]
    await store.append([NewEvent.of(ev.DiagnosisProduced(summary="down"), Actor.AGENT, iid)])
    return iid


async def test_a_dead_replicas_messages_are_sent_by_another(pg_cluster: Any) -> None:
    url = str(pg_cluster.create_database())
    store = SqlEventStore(url)
    sent: list[str] = []
    worker = DeliveryWorker(store, [SlowDestination(sent, delay_s=0.0)],
                            Routes.everything([Destination.SLACK]), "u", leases=True,
                            owner="replica-alive", lease_ttl_s=1.0, poll_s=0.1, settle_s=0.0)
    try:
        iid = await _diagnosed_incident(store)
        # A replica took the incident's delivery lease and was killed before it sent anything.
        assert await store.claim(f"delivery:{iid}", "replica-dead", 1.0, time.time())
        await worker.start()
        await asyncio.sleep(0.5)
        assert sent == []  # the lease is the dead replica's until it runs out
        await eventually(lambda: _delivered(store, iid), timeout=10, what="taken over")
        assert sent == ["post"]
        # Taken over, then released: the release follows the delivery's append, so wait for it
        # (list_leases(0.0) lists expired leases too: only a release empties it).
        await eventually(lambda: _no_leases(store), timeout=10, what="lease released")
    finally:
        await worker.stop()
        await store.close()


async def test_a_sync_slower_than_the_ttl_keeps_its_lease(pg_cluster: Any) -> None:
    url = str(pg_cluster.create_database())
    a, b = SqlEventStore(url), SqlEventStore(url)
    sent: list[str] = []
    slow, other = (DeliveryWorker(store, [SlowDestination(sent, delay_s=2.0)],
                                  Routes.everything([Destination.SLACK]), "u", leases=True,
                                  owner=owner, lease_ttl_s=0.6, poll_s=0.1, settle_s=0.0)
                   for store, owner in ((a, "replica-slow"), (b, "replica-other")))
    try:
        iid = await _diagnosed_incident(a)
        syncing = asyncio.create_task(slow.sync_leased(iid))
        await asyncio.sleep(0.2)  # the slow replica holds the lease and is sending
        await other.start()  # looks for run-out leases every 0.3 s while the send takes 2 s
        await syncing
        await asyncio.sleep(1.0)
        assert sent == ["post"]  # not a second post by the other replica
        done = await b.list_events(incident_id=iid, types=[EventType.NOTIFICATION_DELIVERED])
        assert len(done) == 1
    finally:
        await other.stop()
        await a.close()
        await b.close()


async def _no_leases(store: SqlEventStore) -> bool:
    return await store.list_leases(0.0) == []


async def _delivered(store: SqlEventStore, iid: str) -> bool:
    return bool(await store.list_events(incident_id=iid,
                                        types=[EventType.NOTIFICATION_DELIVERED]))
