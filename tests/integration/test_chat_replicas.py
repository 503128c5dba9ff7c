"""Two replicas on one real PostgreSQL database: an incident's chat message is sent once (the
``delivery:`` lease), and the second replica's later sync finds it delivered."""

from __future__ import annotations

import asyncio
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

pytestmark = pytest.mark.integration


class SlowDestination:
    name = Destination.SLACK

    def __init__(self, sent: list[str]) -> None:
        self.sent = sent

    def messages(self, card: IncidentCard, have: Mapping[str, Delivered]) -> list[Message]:
        body = {"summary": card.summary}
        return [Message("incident", "update" if "incident" in have else "post", body,
                        digest_of(body))] if card.diagnosed else []

    async def send(self, message: Message, have: Delivered | None) -> Sent:
        self.sent.append(message.op)
        await asyncio.sleep(0.5)
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
