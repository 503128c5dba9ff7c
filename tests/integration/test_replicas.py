"""Several agents on one real PostgreSQL database: the first replica steps (issue 15).

Two real `sre-agent serve` processes share one database, as behind an Alertmanager HA pair:
the same alert delivered to both at once is stored once, one incident, one analysis, and the
hash chain stays one linear chain. Incident work is leased: a replica that stops holding a
lease loses the incident to another after the lease's TTL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.events import EventType
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import EventStore
from sre_agent.store.sql import SqlEventStore
from tests.support.components import free_port, wait_ready
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
TOKEN = "replica-webhook-token-1"


def _serve(url: str, tmp_path: Path, name: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    env.update(SRE_AGENT_DATABASE_URL=url, SRE_AGENT_WEBHOOK_TOKEN=TOKEN,
               SRE_AGENT_LOG_FORMAT="json", SRE_AGENT_RESUME_SWEEP_S="1",
               SRE_AGENT_LEASE_TTL_S="5")
    log = (tmp_path / f"{name}.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "sre_agent", "serve", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def replicas(pg_cluster: Any, tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    url = pg_cluster.create_database()
    started = [_serve(url, tmp_path, f"r{i}") for i in range(2)]
    try:
        for _proc, base in started:
            wait_ready(base, 30)
        yield url, [base for _, base in started]
    finally:
        for proc, _ in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in started:
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()


async def test_the_same_alert_at_two_replicas_is_one_incident_analysed_once(
        replicas: tuple[str, list[str]]) -> None:
    url, bases = replicas
    payload = notification([alert(fingerprint="ha00000000000001")])
    headers = {"authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=30) as client:
        answers = await asyncio.gather(*(
            client.post(f"{bases[i % 2]}/webhook/alertmanager", json=payload, headers=headers)
            for i in range(50)))  # what an HA pair does, many times over, to both replicas
        assert {r.status_code for r in answers} == {200}
        assert sum(r.json()["alerts_new"] for r in answers) == 1
        (incident,) = {i for r in answers for i in r.json()["incidents"]}
        store = SqlEventStore(url)
        try:
            for _ in range(150):
                if not await store.pending_incidents():
                    break
                await asyncio.sleep(0.2)
            events = await store.list_events(incident_id=incident, limit=1000)
            types = [e.type for e in events]
            assert types.count(EventType.ALERT_RECEIVED) == 1
            assert types.count(EventType.DIAGNOSIS_PRODUCED) == 1  # one analysis, not two
            assert (await store.verify()).ok  # one linear chain from two writers
        finally:
            await store.close()


class SlowStage:
    """Records which runner ran an incident, and takes its time."""

    name = "slow"

    def __init__(self, who: str, log: list[str], seconds: float) -> None:
        self.who, self.log, self.seconds = who, log, seconds

    async def run(self, work: IncidentWork, store: EventStore) -> None:
        self.log.append(self.who)
        await asyncio.sleep(self.seconds)


async def test_a_dead_replicas_incident_is_taken_over_after_the_lease_ttl(
        pg_cluster: Any) -> None:
    url = pg_cluster.create_database()
    a_store, b_store = SqlEventStore(url), SqlEventStore(url)
    ran: list[str] = []
    a = PipelineRunner(a_store, [SlowStage("A", ran, 30)], workers=1, leases=True,
                       lease_ttl_s=2, owner="A", sweep_s=0.3)
    b = PipelineRunner(b_store, [SlowStage("B", ran, 0)], workers=1, leases=True,
                       lease_ttl_s=2, owner="B", sweep_s=0.3)
    try:
        result = await a_store.ingest(WebhookNotification.model_validate(notification()))
        (incident,) = result.touched
        await a.start()
        a.submit(incident)
        for _ in range(50):
            if ran:
                break
            await asyncio.sleep(0.05)
        await b.start()
        await asyncio.sleep(1.0)
        assert ran == ["A"]  # B's sweep sees it pending, but A holds (and renews) the lease
        # A "dies": its tasks stop without releasing the lease (as kill -9 would).
        for task in a._tasks:
            task.cancel()
        await asyncio.gather(*a._tasks, return_exceptions=True)
        for _ in range(100):
            if "B" in ran and not await b_store.pending_incidents():
                break
            await asyncio.sleep(0.1)
        assert ran == ["A", "B"]  # taken over once A's lease ran out
        assert await b_store.pending_incidents() == []
    finally:
        await b.stop()
        await a_store.close()
        await b_store.close()
