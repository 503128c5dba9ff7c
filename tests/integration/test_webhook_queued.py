"""SRE_AGENT_WEBHOOK_ACK=queued over HTTP (ASGI) on a real SQLite file and a real PostgreSQL
database: 202 once the raw notification is in the inbox, then the drainer makes it incidents,
exactly once, across restarts and across an api and a worker process."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from sre_agent.api.app import create_app
from sre_agent.bootstrap import Services
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.ports import StoreUnavailable
from sre_agent.store.sql import SqlEventStore
from tests.conftest import make_settings
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
URL = "/webhook/alertmanager"
TOKEN = "tok-queued"
HEADERS = {"authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def agent(tmp_path: Path, url: str, **overrides: Any
                ) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    settings = make_settings(tmp_path, database_url=url, webhook_token=TOKEN,
                             webhook_ack="queued", worker_poll_s=0.1, **overrides)
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent") as client:
        yield client, app.state.services


async def until_drained(services: Services, timeout_s: float = 15.0) -> None:
    for _ in range(int(timeout_s / 0.02)):
        if not await services.store.queued():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"inbox not drained in {timeout_s} s")


async def incidents(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    r = await client.get("/incidents")
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


async def test_answered_202_once_queued_then_ingested_as_an_incident(
        tmp_path: Path, store_url: str) -> None:
    async with agent(tmp_path, store_url) as (client, services):
        r = await client.post(URL, json=notification(), headers=HEADERS)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["status"] == "queued" and body["alerts"] == 1
        assert isinstance(body["inbox_id"], int)
        await until_drained(services)
        [incident] = await incidents(client)
        detail = (await client.get(f"/incidents/{incident['id']}")).json()
        assert [e["type"] for e in detail["events"]][:2] == ["IncidentOpened", "AlertReceived"]
        assert detail["alerts"][0]["labels"]["job"] == "target"
        assert services.inbox.ingested == 1
        assert (await client.get("/audit/verify")).json()["ok"] is True


async def test_redeliveries_are_queued_each_and_stored_once(tmp_path: Path,
                                                            store_url: str) -> None:
    async with agent(tmp_path, store_url) as (client, services):
        ids = []
        for _ in range(3):
            r = await client.post(URL, json=notification(), headers=HEADERS)
            assert r.status_code == 202, r.text
            ids.append(r.json()["inbox_id"])
        assert len(set(ids)) == 3 and ids == sorted(ids)
        await until_drained(services)
        events = (await client.get("/audit", params={"type": "AlertReceived"})).json()["items"]
        assert len(events) == 1
        r = await client.post(URL, json=notification([alert(status="resolved")]),
                              headers=HEADERS)
        assert r.status_code == 202
        assert r.json()["inbox_id"] > ids[-1]  # an emptied inbox reuses no id
        await until_drained(services)
        [incident] = await incidents(client)
        assert incident["status"] == "resolved"
        metrics = (await client.get("/metrics")).text
        assert 'sre_agent_notifications_total{outcome="queued"} 4.0' in metrics
        assert 'sre_agent_alerts_received_total{novelty="duplicate",status="any"} 2.0' in metrics


async def test_bad_input_is_refused_and_nothing_is_queued(tmp_path: Path) -> None:
    async with agent(tmp_path, f"sqlite:///{tmp_path / 'bad.db'}") as (client, services):
        assert (await client.post(URL, json=notification())).status_code == 401
        bad_json = await client.post(URL, content=b"{nope", headers={
            **HEADERS, "content-type": "application/json"})
        assert bad_json.status_code == 400 and "invalid JSON" in bad_json.json()["detail"]
        not_v4 = await client.post(URL, json={"alerts": "x"}, headers=HEADERS)
        assert not_v4.status_code == 422
        assert await services.store.queued() == []
        assert await incidents(client) == []


async def test_what_was_queued_before_a_crash_is_ingested_at_start(tmp_path: Path,
                                                                    store_url: str) -> None:
    # A process that acknowledged and died before correlating leaves the row in the inbox.
    store = SqlEventStore(store_url)
    first = await store.enqueue(json.dumps(notification()))
    await store.enqueue(json.dumps(notification([alert(fingerprint="other")],
                                                group_key="other-group")))
    await store.close()
    async with agent(tmp_path, store_url) as (client, services):
        await until_drained(services)
        assert len(await incidents(client)) == 2
    again = SqlEventStore(store_url)
    try:  # taken out in the ingest's own transaction: a second ingest of it is refused
        n = WebhookNotification.model_validate(notification())
        assert await again.ingest_queued(first, n) is None
        assert (await again.verify()).ok
    finally:
        await again.close()


async def test_an_api_process_queues_and_a_worker_ingests(tmp_path: Path,
                                                          pg_cluster: Any) -> None:
    url = str(pg_cluster.create_database())
    async with agent(tmp_path / "api", url, role="api") as (api, api_services):
        r = await api.post(URL, json=notification(), headers=HEADERS)
        assert r.status_code == 202, r.text
        await asyncio.sleep(0.3)  # three of a worker's polls: an api process drains nothing
        assert [i for i, _ in await api_services.store.queued()] == [r.json()["inbox_id"]]
        status = (await api.get("/status")).json()
        assert status["inbox"] == 1 and status["backlog"] == 0
        assert "Queued, not yet correlated" in (await api.get("/status",
                                                             headers={"accept": "text/html"})).text
        async with agent(tmp_path / "worker", url, role="worker") as (_, worker):
            await until_drained(worker)
            assert worker.inbox.ingested == 1
        assert len(await incidents(api)) == 1
        assert (await api.get("/status")).json()["inbox"] == 0


async def test_two_replicas_ingesting_one_queued_notification_store_it_once(
        store_url: str) -> None:
    a, b = SqlEventStore(store_url), SqlEventStore(store_url)
    try:
        n = WebhookNotification.model_validate(notification())
        inbox_id = await a.enqueue(json.dumps(notification()))
        results = await asyncio.gather(a.ingest_queued(inbox_id, n), b.ingest_queued(inbox_id, n))
        assert sorted(r is None for r in results) == [False, True]
        assert await a.queued() == [] and len((await a.list_incidents()).items) == 1
        assert [e.type for e in await b.list_events()] == ["IncidentOpened", "AlertReceived"]
    finally:
        await a.close()
        await b.close()


async def test_on_postgresql_queueing_never_waits_for_the_pipelines_writes(
        pg_cluster: Any) -> None:
    store = SqlEventStore(str(pg_cluster.create_database()))
    release = threading.Event()
    # The main writer thread held by a batch (a long pipeline write, say).
    held = asyncio.ensure_future(store._write(lambda _conn: release.wait(30)))
    try:
        await asyncio.sleep(0.05)
        assert not held.done()
        inbox_id = await asyncio.wait_for(store.enqueue(json.dumps(notification())), 10)
        assert [i for i, _ in await store.queued()] == [inbox_id]
    finally:
        release.set()
        await held
        await store.close()


async def test_enqueues_of_one_batch_are_one_insert_and_each_gets_its_own_row(
        store_url: str) -> None:
    store = SqlEventStore(store_url)
    inserts: list[int] = []  # rows per INSERT into the inbox
    writer = store._inbox_writer
    if writer is not None:  # PostgreSQL: the event loop's own writer (store/pg_inbox.py)
        insert = writer._insert

        async def counted(bodies: list[str]) -> list[int]:
            inserts.append(len(bodies))
            return await insert(bodies)
        writer._insert = counted  # type: ignore[method-assign]
    else:  # SQLite: Combined jobs of the writer thread's batch

        def count(_conn: Any, clause: Any, multiparams: Any, _params: Any, _opts: Any) -> None:
            if getattr(getattr(clause, "table", None), "name", None) == "inbox":
                inserts.append(len(multiparams) or 1)
        event.listen(store.engine, "before_execute", count)
    release = threading.Event()
    # Hold the writer thread, so the 40 enqueues queue up into one batch behind it (on
    # PostgreSQL they are one batch anyway: all queued before the loop's writer runs).
    held = asyncio.get_running_loop().run_in_executor(store._executor, release.wait, 30)
    try:
        bodies = [json.dumps(notification([alert(fingerprint=f"fp{i}")])) for i in range(40)]
        pending = [asyncio.ensure_future(store.enqueue(b)) for b in bodies]
        await asyncio.sleep(0.05)
        release.set()
        ids = await asyncio.gather(*pending)
        assert len(set(ids)) == 40 and ids == sorted(ids)  # in the order they were queued
        assert dict(await store.queued(limit=100)) == dict(zip(ids, bodies, strict=True))
        assert inserts in ([40], [1, 39])  # the first may have had a batch of its own
    finally:
        release.set()
        await held
        await store.close()


async def test_on_postgresql_the_inbox_writer_reconnects_after_a_server_restart(
        pg_cluster: Any) -> None:
    """The loop's inbox connection dies with the server: the first enqueue after the restart
    fails on it, runs again on a new connection, and is acknowledged; while the server is
    down an enqueue fails with StoreUnavailable (the webhook's 503)."""
    store = SqlEventStore(str(pg_cluster.create_database()))
    try:
        first = await store.enqueue(json.dumps(notification()))
        pg_cluster.stop()
        with pytest.raises(StoreUnavailable):
            await store.enqueue(json.dumps(notification()))
        pg_cluster.start()
        second = await store.enqueue(json.dumps(notification()))
        assert second > first
        assert [i for i, _ in await store.queued()] == [first, second]
    finally:
        await store.close()


def test_on_postgresql_the_inbox_writer_survives_a_new_event_loop(pg_cluster: Any) -> None:
    """A store used from one event loop and then another (a CLI command, a test client's
    second lifespan) opens a new inbox connection on the new loop."""
    store = SqlEventStore(str(pg_cluster.create_database()))
    first = asyncio.run(store.enqueue(json.dumps(notification())))
    second = asyncio.run(store.enqueue(json.dumps(notification())))
    assert second > first

    async def finish() -> list[int]:
        try:
            return [i for i, _ in await store.queued()]
        finally:
            await store.close()
    assert asyncio.run(finish()) == [first, second]
