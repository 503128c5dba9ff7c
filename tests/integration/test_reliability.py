"""Reliability under abuse: concurrent redelivery, kill -9 mid-storm, slow and oversized bodies,
and a store that stops accepting writes. Real SQLite files, real ``sre-agent serve`` processes.

No timing assertions beyond generous bounds: these machines are shared and noisy.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.bootstrap import Fakes, build_services
from sre_agent.domain.diagnosis import ActionKind
from tests.conftest import make_settings
from tests.integration.test_collector_faults import Blackhole
from tests.support.components import free_port, require
from tests.support.fakes import FakeAnalyzer, FakeBackend, FakeResolver, FakeVerifier
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
URL = "/webhook/alertmanager"
DEAD_DOCKER = "unix:///nonexistent/sre-agent-test-docker.sock"


# --- a real agent process -------------------------------------------------------------------
class AgentProcess:
    """``python -m sre_agent serve`` on a free port and a given SQLite file; stopped by PID."""

    def __init__(self, tmp_path: Path, db: Path, **env: str) -> None:
        self.tmp_path, self.db, self.extra = tmp_path, db, env
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> AgentProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
        env.update({"SRE_AGENT_DATABASE_URL": f"sqlite:///{self.db}",
                    "SRE_AGENT_MODE": "observe", "SRE_AGENT_LOG_LEVEL": "WARNING",
                    "DOCKER_HOST": DEAD_DOCKER, **self.extra})
        with (self.tmp_path / f"agent-{self.port}-{time.time():.0f}.log").open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sre_agent", "serve", "--port", str(self.port)],
                env=env, cwd=self.tmp_path, stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{self.base}/ready", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise AssertionError("agent did not become ready within 30 s")

    def kill9(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db, timeout=30)
    try:
        return list(conn.execute(sql, args))
    finally:
        conn.close()


def audit_verify(db: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    return subprocess.run([sys.executable, "-m", "sre_agent", "audit", "verify",
                           "--database-url", f"sqlite:///{db}"], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(interval)


def storm_notification(i: int, alerts_each: int = 5) -> dict[str, Any]:
    return notification(
        [alert(fingerprint=f"kill{i:04d}x{j}",
               labels={"job": f"kill-job-{i}", "instance": f"kill-{i}-{j}.invalid:9100"})
         for j in range(alerts_each)],
        group_key=f'{{}}:{{storm="{i}"}}')


# --- 1. the same notification 50 times at once ----------------------------------------------
async def test_fifty_concurrent_deliveries_make_one_incident_one_analysis_one_action(
        tmp_path: Path) -> None:
    settings = make_settings(tmp_path, mode="autonomous")
    backend = FakeBackend(delay_s=0.05)
    analyzer = FakeAnalyzer()
    backends: dict[ActionKind, Any] = {ActionKind.RESTART_CONTAINER: backend,
                                       ActionKind.START_CONTAINER: backend}
    container = build_services(settings, backends=backends, fakes=Fakes(
        analyzer=analyzer, resolver=FakeResolver(), sources=[], verifier=FakeVerifier()))
    app = create_app(settings, services=container)
    body = notification([alert(fingerprint=f"same{j}", labels={"container": "web"})
                         for j in range(3)], group_key="{}:{alertname=\"TargetDown\"}")
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        responses = await asyncio.gather(*(c.post(URL, json=body) for _ in range(50)))
        assert [r.status_code for r in responses] == [200] * 50
        payloads = [r.json() for r in responses]
        assert sum(p["alerts_new"] for p in payloads) == 3
        assert sum(p["alerts_duplicate"] for p in payloads) == 3 * 49
        incidents = {i for p in payloads for i in p["incidents"]}
        assert len(incidents) == 1
        await container.runner.wait_idle(30)
        assert len((await c.get("/incidents")).json()["items"]) == 1
        audit = (await c.get("/audit", params={"limit": 1000})).json()["items"]
        types = [e["type"] for e in audit]
        assert types.count("IncidentOpened") == 1
        assert types.count("AlertReceived") == 3
        assert types.count("DiagnosisProduced") == 1
        assert types.count("ActionStarted") == 1
        assert analyzer.calls == 1
        assert len(backend.executed) == 1
        verify = (await c.get("/audit/verify")).json()
        assert verify["ok"] is True


# --- 2. kill -9 in the middle of a storm ----------------------------------------------------
def test_kill_9_during_a_storm_loses_nothing_acknowledged_and_resumes(tmp_path: Path) -> None:
    """8 senders post distinct 5-alert notifications; the agent is SIGKILLed once 40 are
    acknowledged. The first run's Prometheus never answers (each analysis waits out the 1 s
    evidence timeout, one worker), so incidents are certainly left unanalysed at the kill. The
    restart (no Prometheus configured) must analyse them, once each."""
    db = tmp_path / "agent.db"
    hole = Blackhole()
    first = AgentProcess(tmp_path, db, SRE_AGENT_PROMETHEUS_URL=f"http://127.0.0.1:{hole.port}",
                         SRE_AGENT_EVIDENCE_TIMEOUT_S="1", SRE_AGENT_WORKERS="1").start()
    acked: dict[int, list[str]] = {}
    refused: list[int] = []
    kill_after = 40
    indices = iter(range(400))

    async def sender(client: httpx.AsyncClient) -> None:
        for i in indices:
            body = storm_notification(i)
            try:
                r = await client.post(f"{first.base}{URL}", json=body)
            except httpx.TransportError:
                refused.append(i)
                return  # the agent is gone
            if r.status_code == 200:
                acked[i] = [a["fingerprint"] for a in body["alerts"]]
                if len(acked) == kill_after:
                    first.kill9()
            else:
                refused.append(i)

    async def storm() -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(*(sender(client) for _ in range(8)))

    try:
        asyncio.run(storm())
    finally:
        first.stop()
        hole.close()
    assert first.proc is not None and first.proc.returncode == -signal.SIGKILL
    assert len(acked) >= kill_after

    stored = {fp for (fp,) in query(db, "SELECT fingerprint FROM alerts")}
    missing = [fp for fps in acked.values() for fp in fps if fp not in stored]
    assert missing == [], f"acknowledged alerts lost by kill -9: {missing[:10]}"
    analysed = {i for (i,) in query(db, "SELECT DISTINCT incident_id FROM events "
                                        "WHERE type='DiagnosisProduced'")}
    all_incidents = {i for (i,) in query(db, "SELECT id FROM incidents")}
    unanalysed = all_incidents - analysed
    assert unanalysed, "the storm left nothing unprocessed: the test proves nothing"

    second = AgentProcess(tmp_path, db).start()
    try:
        def all_analysed() -> bool:
            rows = query(db, "SELECT count(DISTINCT incident_id) FROM events "
                             "WHERE type='DiagnosisProduced'")
            return int(rows[0][0]) >= len(all_incidents)
        wait_for(all_analysed, 60, "incidents left by the kill analysed after the restart")
        # Alertmanager retries what it did not get a 2xx for, and may repeat the rest.
        with httpx.Client(timeout=30) as client:
            for i in sorted(acked):
                r = client.post(f"{second.base}{URL}", json=storm_notification(i))
                assert r.status_code == 200 and r.json()["alerts_new"] == 0, r.text
            for i in refused:
                assert client.post(f"{second.base}{URL}",
                                   json=storm_notification(i)).status_code == 200
        wait_for(lambda: httpx.get(f"{second.base}/status").json()["backlog"] == 0, 60,
                 "backlog drained")
    finally:
        second.stop()

    per_fp = query(db, "SELECT json_extract(data, '$.fingerprint'), count(*) FROM events "
                       "WHERE type='AlertReceived' GROUP BY 1 HAVING count(*) > 1")
    assert per_fp == [], f"alerts stored twice: {per_fp[:5]}"
    assert query(db, "SELECT count(*) - count(DISTINCT fingerprint) FROM alerts") == [(0,)]
    per_group = query(db, "SELECT group_key, count(*) FROM incidents GROUP BY 1 "
                          "HAVING count(*) > 1")
    assert per_group == [], f"one group, several incidents: {per_group[:5]}"
    twice = query(db, "SELECT incident_id FROM events WHERE type='DiagnosisProduced' "
                      "GROUP BY 1 HAVING count(*) > 1")
    assert twice == [], f"incidents analysed twice: {twice[:5]}"
    expected = {fp for i in [*acked, *refused] for fp in (
        a["fingerprint"] for a in storm_notification(i)["alerts"])}
    assert expected <= {fp for (fp,) in query(db, "SELECT fingerprint FROM alerts")}
    verify = audit_verify(db, tmp_path)
    assert verify.returncode == 0, verify.stderr


# --- 3. slow and oversized requests ---------------------------------------------------------
@pytest.fixture
def agent_process(tmp_path: Path) -> Iterator[AgentProcess]:
    agent = AgentProcess(tmp_path, tmp_path / "agent.db").start()
    try:
        yield agent
    finally:
        agent.stop()


def _request_head(port: int, *, length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\n{framing}\r\n\r\n").encode()


def _read_status(sock: socket.socket) -> int | None:
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError:
        return None
    line = data.split(b"\r\n", 1)[0].split()
    return int(line[1]) if len(line) >= 2 else None


def test_a_slow_body_does_not_block_other_requests(agent_process: AgentProcess) -> None:
    body = json.dumps(notification([alert(fingerprint="slow-1")], group_key="slow")).encode()
    status: dict[str, int | None] = {}
    first_part = len(body) // 2

    def drip() -> None:
        with socket.create_connection(("127.0.0.1", agent_process.port), timeout=30) as sock:
            sock.sendall(_request_head(agent_process.port, length=len(body)))
            for k in range(0, first_part, 8):  # 8 bytes every 100 ms: about 4 s
                sock.sendall(body[k:min(k + 8, first_part)])
                time.sleep(0.1)
            sock.sendall(body[first_part:])
            status["slow"] = _read_status(sock)

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        r = httpx.post(f"{agent_process.base}{URL}", timeout=30,
                       json=notification([alert(fingerprint="fast-1")], group_key="fast"))
        fast_s = time.monotonic() - started
        assert r.status_code == 200
        assert dripper.is_alive(), "the slow body finished first: the test proves nothing"
        assert fast_s < 2.0, f"a normal POST took {fast_s:.1f}s behind a slow body"
    finally:
        dripper.join(60)
    assert status["slow"] == 200
    fps = {fp for (fp,) in query(agent_process.db, "SELECT fingerprint FROM alerts")}
    assert fps == {"slow-1", "fast-1"}


def _send_oversized(port: int, total: int, *, chunked: bool) -> tuple[int | None, int]:
    """Send up to ``total`` bytes, stopping as soon as the server answers early."""
    piece = b" " * 65536
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(_request_head(port, length=None if chunked else total))
        try:
            while sent < total:
                if select.select([sock], [], [], 0)[0]:
                    break  # an early answer: stop sending, as HTTP clients do
                sock.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n" if chunked
                             else piece)
                sent += len(piece)
            else:
                if chunked:
                    sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server closed on us; its answer may still be readable
        return _read_status(sock), sent


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_50_mb_body_is_refused_without_buffering_it(agent_process: AgentProcess,
                                                       chunked: bool) -> None:
    before = agent_process.rss_mb()
    total = 50 * 1024 * 1024
    status, sent = _send_oversized(agent_process.port, total, chunked=chunked)
    assert status == 413
    assert sent < total, "the server read the whole 50 MB before refusing"
    growth = agent_process.rss_mb() - before
    assert growth < 30, f"RSS grew by {growth:.1f} MB for a refused body"
    r = httpx.post(f"{agent_process.base}{URL}", json=notification(), timeout=30)
    assert r.status_code == 200


# --- 4. the store stops accepting writes ----------------------------------------------------
def _set_immutable(path: Path, on: bool) -> bool:
    result = subprocess.run(["chattr", "+i" if on else "-i", str(path)], capture_output=True,
                            text=True, timeout=30, check=False)
    return result.returncode == 0


def _deliver(client: httpx.Client, url: str, body: dict[str, Any], timeout: float = 20) -> None:
    """What Alertmanager does: retry a 5xx (with a short backoff) until it is accepted."""
    deadline = time.monotonic() + timeout
    while True:
        r = client.post(url, json=body)
        if r.status_code == 200:
            return
        assert r.status_code == 503, r.text
        assert time.monotonic() < deadline, f"still {r.status_code} after {timeout}s"
        time.sleep(0.2)


def test_unwritable_store_answers_503_then_recovers_by_itself(tmp_path: Path) -> None:
    """``chattr +i`` on the SQLite WAL file: every write fails with a disk I/O error, even as
    root, while reads still work. Lifted again, the same process accepts writes."""
    db = tmp_path / "agent.db"
    agent = AgentProcess(tmp_path, db).start()
    wal = Path(f"{db}-wal")
    webhook = f"{agent.base}{URL}"
    acked: set[str] = set()
    try:
        with httpx.Client(timeout=60) as client:
            before = notification([alert(fingerprint="before-1")], group_key="before")
            assert client.post(webhook, json=before).status_code == 200
            acked.add("before-1")
            require(wal.exists() and _set_immutable(wal, True),
                    "chattr +i not supported on this filesystem")
            try:
                for k in range(5):
                    body = notification([alert(fingerprint=f"during-{k}")], group_key="during")
                    r = client.post(webhook, json=body)
                    assert r.status_code == 503, r.text
                    assert r.headers.get("retry-after") == "5"
                assert client.get(f"{agent.base}/ready").status_code == 503
                assert client.get(f"{agent.base}/health").status_code == 200
                assert client.get(f"{agent.base}/incidents").status_code == 200  # reads work
                stored = {fp for (fp,) in query(db, "SELECT fingerprint FROM alerts")}
                assert not any(fp.startswith("during") for fp in stored)
            finally:
                _set_immutable(wal, False)
            # No restart: Alertmanager's retries of the same deliveries now succeed.
            for k in range(5):
                _deliver(client, webhook, notification([alert(fingerprint=f"during-{k}")],
                                                       group_key="during"))
                acked.add(f"during-{k}")
            assert client.get(f"{agent.base}/ready").status_code == 200
            after = notification([alert(fingerprint="after-1")], group_key="after")
            assert client.post(webhook, json=after).status_code == 200
            acked.add("after-1")
            wait_for(lambda: client.get(f"{agent.base}/status").json()["backlog"] == 0, 30,
                     "backlog drained")
    finally:
        if wal.exists():
            _set_immutable(wal, False)
        agent.stop()
    stored = {fp for (fp,) in query(db, "SELECT fingerprint FROM alerts")}
    assert acked <= stored
    assert query(db, "SELECT count(*) - count(DISTINCT fingerprint) FROM alerts") == [(0,)]
    verify = audit_verify(db, tmp_path)
    assert verify.returncode == 0, verify.stderr


def test_incident_whose_analysis_hit_the_outage_is_analysed_after_it(tmp_path: Path) -> None:
    db = tmp_path / "agent.db"
    hole = Blackhole()  # Prometheus never answers: the analysis takes the 1 s evidence timeout
    agent = AgentProcess(tmp_path, db, SRE_AGENT_PROMETHEUS_URL=f"http://127.0.0.1:{hole.port}",
                         SRE_AGENT_EVIDENCE_TIMEOUT_S="1").start()
    wal = Path(f"{db}-wal")
    try:
        with httpx.Client(timeout=60) as client:
            r = client.post(f"{agent.base}{URL}", json=notification(group_key="outage"))
            incident = r.json()["incidents"][0]
            require(wal.exists() and _set_immutable(wal, True),
                    "chattr +i not supported on this filesystem")
            try:
                time.sleep(2.5)  # the analysis finishes and fails to append its events
            finally:
                _set_immutable(wal, False)
            wait_for(lambda: client.get(f"{agent.base}/ready").status_code == 200, 20,
                     "store back")

            def analysed() -> bool:
                return bool(query(db, "SELECT 1 FROM events WHERE incident_id = ? AND "
                                      "type = 'DiagnosisProduced'", incident))
            wait_for(analysed, 10, "the incident analysed once the store is back")
    finally:
        if wal.exists():
            _set_immutable(wal, False)
        agent.stop()
        hole.close()
