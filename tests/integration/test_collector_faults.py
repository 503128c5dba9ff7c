"""Every outside dependency broken in every way, seen from the whole pipeline.

Prometheus, Docker and the HTTP probe (evidence) and Alertmanager and the notification webhook
(actions) are each pointed at a fault: a free port nothing listens on (unreachable), a socket
that accepts and never answers (slow), an HTTP server answering 200 with non-JSON or with JSON of
the wrong shape, and a server that answers bytes that are not HTTP at all. The agent is the real
one (``build_services`` wiring, real SQLite, rules analyser); each test asserts that the
pipeline finishes within a generous bound (5x the configured timeout), records what failed
(Evidence with status ``error``, or ``ActionFailed`` with an error), and still produces a
diagnosis.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.bootstrap import Fakes, Services, build_backends, build_services
from sre_agent.config import Settings
from sre_agent.domain.diagnosis import ActionKind
from tests.conftest import make_settings
from tests.support.components import free_port
from tests.support.docker_helpers import ContainerJanitor, docker_client
from tests.support.fakes import FakeAnalyzer, FakeResolver, FakeVerifier
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
URL = "/webhook/alertmanager"
TIMEOUT_S = 1.0
BOUND_S = 5 * TIMEOUT_S
DEAD_DOCKER = "unix:///nonexistent/sre-agent-test-docker.sock"
FAULTS = ["unreachable", "slow", "garbage_text", "garbage_json", "not_http"]
GARBAGE = {"garbage_text": (200, b"<html><body>502 Bad Gateway (or so)</body></html>"),
           "garbage_json": (200, b'{"unexpected": [1, 2, 3], "data": null}'),
           "http_500": (500, b"<html>internal error, stack trace and all</html>")}


# --- faults -----------------------------------------------------------------------------------
class Blackhole:
    """A TCP server that accepts connections and never answers (a hung dependency)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = int(self.sock.getsockname()[1])
        self.held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.held.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self.held:
            conn.close()
        self.sock.close()


class NotHttp(Blackhole):
    """Answers every connection with bytes that are not HTTP, then hangs up."""

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            try:
                conn.settimeout(1)
                conn.recv(65536)
                conn.sendall(b"\x00\x17SSH-2.0-OpenSSH_9.2\r\n\xff\xfe garbage\r\n\r\n")
            except OSError:
                pass
            finally:
                conn.close()


class Garbage:
    """An HTTP server answering every request with a fixed status and body."""

    def __init__(self, status: int, body: bytes) -> None:
        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length:
                    self.rfile.read(length)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._answer()

            def do_POST(self) -> None:
                self._answer()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(params=FAULTS)
def fault(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    """(kind, port) of a broken dependency on 127.0.0.1."""
    kind: str = request.param
    if kind == "unreachable":
        yield kind, free_port()
        return
    server: Blackhole | Garbage = (Blackhole() if kind == "slow" else NotHttp()
                                   if kind == "not_http" else Garbage(*GARBAGE[kind]))
    try:
        yield kind, server.port
    finally:
        server.close()


# --- the agent --------------------------------------------------------------------------------
@asynccontextmanager
async def running(container: Services, settings: Settings
                  ) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, services=container)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent") as client:
        yield client


async def deliver_and_settle(client: httpx.AsyncClient, container: Services,
                             body: dict[str, Any]) -> tuple[str, float]:
    """POST one notification; return its incident and the seconds until the pipeline is idle."""
    started = time.monotonic()
    r = await client.post(URL, json=body)
    assert r.status_code == 200, r.text
    await container.runner.wait_idle(60)
    return r.json()["incidents"][0], time.monotonic() - started


async def timeline(container: Services, incident: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for ev in await container.store.list_events(incident_id=incident, limit=1000):
        out.setdefault(ev.type, []).append(ev.data)
    return out


def evidence_of(events: dict[str, list[dict[str, Any]]], source: str) -> list[dict[str, Any]]:
    assert len(events.get("EvidenceCollected", [])) == 1, list(events)
    return [e for e in events["EvidenceCollected"][0]["evidence"] if e["source"] == source]


def assert_failed_cleanly(items: list[dict[str, Any]], what: str) -> None:
    assert items, f"no {what} evidence recorded"
    for item in items:
        assert item["status"] == "error", item
        assert item["error"] and "Traceback" not in item["error"], item


def assert_diagnosed(events: dict[str, list[dict[str, Any]]]) -> None:
    diagnoses = events.get("DiagnosisProduced", [])
    assert len(diagnoses) == 1, list(events)
    assert diagnoses[0]["engine"] == "rules"


# --- evidence collectors ----------------------------------------------------------------------
async def test_prometheus_fault(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                fault: tuple[str, int]) -> None:
    kind, port = fault
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    settings = make_settings(tmp_path, mode="observe", evidence_timeout_s=TIMEOUT_S,
                             prometheus_url=f"http://127.0.0.1:{port}")
    container = build_services(settings)
    async with running(container, settings) as client:
        incident, seconds = await deliver_and_settle(client, container, notification())
        events = await timeline(container, incident)
    assert seconds < BOUND_S, f"{kind}: pipeline took {seconds:.1f}s"
    prometheus = evidence_of(events, "prometheus")
    assert {e["name"] for e in prometheus} >= {"alert_expr", "up"}
    assert_failed_cleanly(prometheus, "prometheus")
    if kind == "slow":
        assert all("timed out" in e["error"] for e in prometheus)
    assert_diagnosed(events)


async def test_docker_fault(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                            fault: tuple[str, int]) -> None:
    kind, port = fault
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{port}")
    settings = make_settings(tmp_path, mode="observe", evidence_timeout_s=TIMEOUT_S)
    container = build_services(settings)
    body = notification([alert(labels={"container": "web"})])
    async with running(container, settings) as client:
        incident, seconds = await deliver_and_settle(client, container, body)
        events = await timeline(container, incident)
    assert seconds < BOUND_S, f"{kind}: pipeline took {seconds:.1f}s"
    resolution = evidence_of(events, "target")
    assert_failed_cleanly(resolution, "target resolution")
    assert "docker" in resolution[0]["error"].lower()
    targets = events["EvidenceCollected"][0]["targets"]
    assert [(t["name"], t["verified"]) for t in targets] == [("web", False)]
    assert_failed_cleanly(evidence_of(events, "docker"), "docker")
    assert_diagnosed(events)
    if kind != "slow":  # a hung daemon takes the timeout twice (resolution, then state)
        assert seconds < 3 * TIMEOUT_S


@pytest.mark.parametrize("fault", ["unreachable", "slow", "not_http"], indirect=True)
async def test_http_probe_fault(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                fault: tuple[str, int]) -> None:
    """The probe URL comes from the container's own label, as in production: real Docker."""
    kind, port = fault
    client = docker_client()
    with ContainerJanitor(client) as janitor:
        box = janitor.run_busybox(["sleep", "300"], prefix="probe", labels={
            "sre-agent.managed": "true",
            "sre-agent.health-url": f"http://127.0.0.1:{port}/health"})
        settings = make_settings(tmp_path, mode="observe", evidence_timeout_s=TIMEOUT_S)
        container = build_services(settings)
        body = notification([alert(labels={"container": box.name})])
        async with running(container, settings) as api:
            incident, seconds = await deliver_and_settle(api, container, body)
            events = await timeline(container, incident)
    client.close()
    assert seconds < BOUND_S, f"{kind}: pipeline took {seconds:.1f}s"
    probes = evidence_of(events, "http_probe")
    assert [p["name"] for p in probes] == [box.name]
    assert_failed_cleanly(probes, "http_probe")
    assert probes[0]["data"]["healthy"] is False
    assert [e["status"] for e in evidence_of(events, "docker")] == ["ok"]  # the rest works
    assert_diagnosed(events)


# --- action backends --------------------------------------------------------------------------
@pytest.mark.parametrize("fault", [*FAULTS, "http_500"], indirect=True)
async def test_alertmanager_silence_fault(tmp_path: Any, fault: tuple[str, int]) -> None:
    kind, port = fault
    settings = make_settings(tmp_path, mode="autonomous", action_timeout_s=TIMEOUT_S,
                             alertmanager_url=f"http://127.0.0.1:{port}")
    backends = build_backends(settings)
    assert ActionKind.SILENCE_ALERT in backends
    container = build_services(settings, backends=backends, fakes=Fakes(
        analyzer=FakeAnalyzer(kind=ActionKind.SILENCE_ALERT), resolver=FakeResolver(),
        sources=[], verifier=FakeVerifier()))
    async with running(container, settings) as client:
        incident, seconds = await deliver_and_settle(client, container, notification())
        events = await timeline(container, incident)
        actions = (await client.get("/actions", params={"incident": incident})).json()
    assert seconds < BOUND_S, f"{kind}: pipeline took {seconds:.1f}s"
    assert [(a["kind"], a["status"]) for a in actions] == [("silence_alert", "failed")]
    assert len(events.get("ActionStarted", [])) == 1
    failed = events.get("ActionFailed", [])
    assert len(failed) == 1
    error = failed[0]["result"]["error"]
    assert "alertmanager" in error.lower() and "Traceback" not in error, error
    assert failed[0]["result"]["ok"] is False


# A notification receiver answering 200 has taken the message, whatever its body says (Slack
# answers "ok" as text): the garbage_* faults are deliveries, not failures, for this backend.
@pytest.mark.parametrize("fault", ["unreachable", "slow", "not_http", "http_500"], indirect=True)
async def test_notification_webhook_fault(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                          fault: tuple[str, int]) -> None:
    """The real rules: an alert no runbook knows gets notify + escalate, both to the fault."""
    kind, port = fault
    monkeypatch.setenv("DOCKER_HOST", DEAD_DOCKER)
    secret_path = "/services/T000/B000/notify-secret-path"
    settings = make_settings(tmp_path, mode="autonomous", action_timeout_s=TIMEOUT_S,
                             notify_url=f"http://127.0.0.1:{port}{secret_path}")
    container = build_services(settings, backends=build_backends(settings))
    body = notification([alert(name="SomethingNobodyWroteARunbookFor",
                               expr="rate(odd_things_total[5m]) > 3",
                               annotations={"summary": "odd things"})])
    async with running(container, settings) as client:
        incident, seconds = await deliver_and_settle(client, container, body)
        events = await timeline(container, incident)
        actions = (await client.get("/actions", params={"incident": incident})).json()
    assert_diagnosed(events)
    assert sorted((a["kind"], a["status"]) for a in actions) == [
        ("escalate", "failed"), ("notify", "failed")]
    assert seconds < BOUND_S * len(actions), f"{kind}: pipeline took {seconds:.1f}s"
    failed = events.get("ActionFailed", [])
    assert len(failed) == 2
    for item in failed:
        error = item["result"]["error"]
        assert error and "Traceback" not in error, error
        assert secret_path not in error and secret_path not in str(item), item
        assert "notification" in error, error
