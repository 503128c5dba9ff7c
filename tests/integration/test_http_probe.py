"""HttpProbe against a real local HTTP server: 200, 500, slow, redirect, refused, black hole."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from sre_agent.domain.evidence import AlertContext, EvidenceStatus, ResolvedTarget
from sre_agent.evidence.http_probe import HttpProbe
from tests.support.components import free_port

pytestmark = pytest.mark.integration

TIMEOUT_S = 0.5
SLOW_S = 2.0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        routes = {
            "/ok": (200, b"ok"),
            "/fail": (500, b"db down: password=hunter2"),
            "/created": (201, b""),
            "/big": (200, b"x" * 100_000),
        }
        if self.path == "/slow":
            time.sleep(SLOW_S)
            code, body = 200, b"late"
        elif self.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "/ok")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        else:
            code, body = routes.get(self.path, (404, b"not found"))
        try:
            self.send_response(code)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the prober gave up first

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def black_hole() -> Iterator[str]:
    """A port that accepts connections (kernel backlog) but never answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/health"
    finally:
        sock.close()


def ctx() -> AlertContext:
    return AlertContext(incident_id="i", group_key="g", alerts=[])


async def test_200_is_healthy(server: str) -> None:
    ev = await HttpProbe(TIMEOUT_S).probe(f"{server}/ok")
    assert ev.status is EvidenceStatus.OK and ev.error is None
    assert ev.source == "http_probe" and ev.name == f"{server}/ok"
    assert (ev.data["status_code"], ev.data["healthy"]) == (200, True)
    assert ev.data["body_excerpt"] == "ok"
    assert ev.data["response_ms"] > 0 and ev.duration_ms > 0


async def test_other_2xx_is_healthy(server: str) -> None:
    ev = await HttpProbe(TIMEOUT_S).probe(f"{server}/created")
    assert (ev.data["status_code"], ev.data["healthy"]) == (201, True)


async def test_500_is_unhealthy_and_body_redacted(server: str) -> None:
    ev = await HttpProbe(TIMEOUT_S).probe(f"{server}/fail")
    assert ev.status is EvidenceStatus.OK  # the probe worked; the target is unhealthy
    assert (ev.data["status_code"], ev.data["healthy"]) == (500, False)
    assert ev.data["body_excerpt"] == "db down: password=[REDACTED]"


async def test_redirect_is_not_followed(server: str) -> None:
    ev = await HttpProbe(TIMEOUT_S).probe(f"{server}/redirect")
    assert (ev.data["status_code"], ev.data["healthy"]) == (302, False)


async def test_big_body_is_truncated(server: str) -> None:
    ev = await HttpProbe(TIMEOUT_S).probe(f"{server}/big")
    assert ev.data["healthy"] is True
    assert len(ev.data["body_excerpt"]) <= 300


async def test_slow_answer_times_out(server: str) -> None:
    start = time.monotonic()
    ev = await HttpProbe(TIMEOUT_S).probe(f"{server}/slow")
    elapsed = time.monotonic() - start
    assert ev.status is EvidenceStatus.ERROR
    assert "timed out" in (ev.error or "")
    assert (ev.data["status_code"], ev.data["healthy"]) == (None, False)
    assert elapsed < TIMEOUT_S + 1.0, f"took {elapsed:.2f}s"


async def test_black_hole_times_out(black_hole: str) -> None:
    start = time.monotonic()
    ev = await HttpProbe(TIMEOUT_S).probe(black_hole)
    elapsed = time.monotonic() - start
    assert ev.status is EvidenceStatus.ERROR and "timed out" in (ev.error or "")
    assert elapsed < TIMEOUT_S + 1.0, f"took {elapsed:.2f}s"


async def test_connection_refused_is_error() -> None:
    ev = await HttpProbe(TIMEOUT_S).probe(f"http://127.0.0.1:{free_port()}/health")
    assert ev.status is EvidenceStatus.ERROR
    assert "ConnectError" in (ev.error or "")
    assert ev.data["healthy"] is False and ev.data["status_code"] is None


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://x/y", "not a url", "http://"])
async def test_non_http_urls_are_refused(url: str) -> None:
    ev = await HttpProbe(TIMEOUT_S).probe(url)
    assert ev.status is EvidenceStatus.ERROR and ev.error == "not an http(s) URL"


async def test_collect_uses_label_url_then_settings_mapping(server: str) -> None:
    probe = HttpProbe(TIMEOUT_S, default_urls={"api": f"{server}/fail",
                                               "web": f"{server}/slow"})
    targets = [
        ResolvedTarget(name="web", via="label:container", verified=True,
                       health_url=f"{server}/ok"),  # the label wins over the mapping
        ResolvedTarget(name="api", via="docker_label:sre-agent.job", verified=True),
        ResolvedTarget(name="worker", via="docker_label:sre-agent.job", verified=True),
    ]
    start = time.monotonic()
    results = {ev.name: ev for ev in await probe.collect(ctx(), targets)}
    elapsed = time.monotonic() - start
    assert set(results) == {"web", "api"}  # no URL for worker: not probed
    assert results["web"].data["healthy"] is True
    assert results["web"].data["target"] == "web"
    assert results["api"].data["status_code"] == 500
    assert elapsed < TIMEOUT_S + 1.0


async def test_collect_probes_concurrently(server: str) -> None:
    probe = HttpProbe(TIMEOUT_S)
    targets = [ResolvedTarget(name=f"t{i}", via="x", verified=True, health_url=f"{server}/slow")
               for i in range(4)]
    start = time.monotonic()
    results = await probe.collect(ctx(), targets)
    elapsed = time.monotonic() - start
    assert [r.status for r in results] == [EvidenceStatus.ERROR] * 4
    assert elapsed < TIMEOUT_S * 2 + 0.5, f"took {elapsed:.2f}s: not concurrent"
