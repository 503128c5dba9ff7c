"""PrometheusEvidence against a real Prometheus binary scraping a local target we control."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import quote_plus

import pytest

from sre_agent.domain.evidence import AlertContext, EvidenceStatus
from sre_agent.evidence.prometheus import PrometheusEvidence, summarise_instant, up_query
from tests.support.components import free_port
from tests.support.prometheus import running_prometheus, wait_for_value

pytestmark = pytest.mark.integration

JOB = "evtarget"
TIMEOUT_S = 2.0


@dataclass
class Gauges:
    values: dict[str, float] = field(default_factory=lambda: {"a": 7.0, "b": 3.0})

    def exposition(self) -> bytes:
        lines = ["# HELP test_gauge a gauge the test controls", "# TYPE test_gauge gauge"]
        lines += [f'test_gauge{{kind="{k}"}} {v}' for k, v in self.values.items()]
        return ("\n".join(lines) + "\n").encode()


@dataclass
class Scraped:
    prom_url: str
    instance: str
    gauges: Gauges


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scraped]:
    gauges = Gauges()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = gauges.exposition() if self.path == "/metrics" else b"not found"
            self.send_response(200 if self.path == "/metrics" else 404)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    instance = f"127.0.0.1:{httpd.server_address[1]}"
    try:
        with running_prometheus(tmp_path_factory.mktemp("prom"), [instance], JOB) as prom:
            wait_for_value(prom.url, f'up{{job="{JOB}"}}', lambda v: v == 1, timeout=30)
            wait_for_value(prom.url, "test_gauge", lambda v: v == 7.0, timeout=30)
            yield Scraped(prom.url, instance, gauges)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def prom(scraped: Scraped) -> Iterator[PrometheusEvidence]:
    ev = PrometheusEvidence(scraped.prom_url, timeout_s=TIMEOUT_S, lookback_minutes=5)
    yield ev
    ev.close()


def alert(expr: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": "T", **labels}, "annotations": {}, "status": "firing",
            "generator_url": f"http://prom:9090/graph?g0.expr={quote_plus(expr)}&g0.tab=1",
            "starts_at": "2026-01-01T00:00:00Z"}


def ctx_for(*alerts: dict[str, Any], extra: dict[str, str] | None = None) -> AlertContext:
    return AlertContext(incident_id="i", group_key="g", alerts=list(alerts),
                        extra_queries=extra or {})


async def test_collect_alert_expr_up_and_extra_queries(scraped: Scraped,
                                                       prom: PrometheusEvidence) -> None:
    ctx = ctx_for(alert(f'up{{job="{JOB}"}} == 1', job=JOB, instance=scraped.instance),
                  extra={"gauge_max": "max(test_gauge)", "gauges": "test_gauge"})
    start = time.monotonic()
    evidence = {e.name: e for e in await prom.collect(ctx, [])}
    elapsed = time.monotonic() - start
    assert set(evidence) == {"alert_expr", "up", "query:gauge_max", "query:gauges"}
    assert all(e.source == "prometheus" and e.duration_ms > 0 for e in evidence.values())
    assert elapsed < TIMEOUT_S + 1, f"took {elapsed:.2f}s"

    expr = evidence["alert_expr"]
    assert expr.status is EvidenceStatus.OK, expr
    assert expr.data["query"] == f'up{{job="{JOB}"}} == 1'
    assert expr.data["value"] == 1.0
    assert expr.data["series"][0]["metric"]["instance"] == scraped.instance
    assert expr.data["range"], "range query over the lookback should have points"
    assert len(expr.data["range"]) <= 40
    assert all(len(p) == 2 and p[1] == 1.0 for p in expr.data["range"])

    up = evidence["up"]
    assert up.status is EvidenceStatus.OK
    assert up.data["query"] == f'up{{job="{JOB}",instance="{scraped.instance}"}}'
    assert up.data["value"] == 1.0 and "range" not in up.data

    gauge_max = evidence["query:gauge_max"]
    assert (gauge_max.status, gauge_max.data["value"]) == (EvidenceStatus.OK, 7.0)
    gauges = evidence["query:gauges"]
    assert gauges.data["value"] == 7.0
    assert [(s["metric"]["kind"], s["value"]) for s in gauges.data["series"]] == [
        ("a", 7.0), ("b", 3.0)]


async def test_gauge_changes_are_seen(scraped: Scraped, prom: PrometheusEvidence) -> None:
    scraped.gauges.values["b"] = 42.0
    try:
        for _ in range(40):
            ev = await prom.query("max(test_gauge)")
            if ev.data["value"] == 42.0:
                break
            await asyncio.sleep(0.25)
        assert ev.status is EvidenceStatus.OK and ev.name == "query"
        assert ev.data["value"] == 42.0
    finally:
        scraped.gauges.values["b"] = 3.0


async def test_empty_result_is_no_data(prom: PrometheusEvidence) -> None:
    ev = await prom.query('up{job="no-such-job"}')
    assert ev.status is EvidenceStatus.NO_DATA and ev.error is None
    assert ev.data == {"query": 'up{job="no-such-job"}', "value": None, "series": []}
    # a firing-style expression that is currently false: nothing now, nothing in the range
    [expr] = await prom.collect(ctx_for(alert(f'up{{job="{JOB}"}} == 0')), [])
    assert expr.name == "alert_expr" and expr.status is EvidenceStatus.NO_DATA
    assert expr.data["range"] == []


async def test_invalid_promql_is_error(prom: PrometheusEvidence) -> None:
    ev = await prom.query("sum(")
    assert ev.status is EvidenceStatus.ERROR
    assert "400" in (ev.error or "")


async def test_scalar_and_nan_results(prom: PrometheusEvidence) -> None:
    ev = await prom.query("1 + 1")
    assert (ev.status, ev.data["value"]) == (EvidenceStatus.OK, 2.0)
    nan = await prom.query("0 / 0")
    assert nan.status is EvidenceStatus.OK
    assert nan.data["value"] is None and nan.data["series"][0]["raw"] == "NaN"


async def test_query_range(prom: PrometheusEvidence) -> None:
    ev = await prom.query_range("max(test_gauge)", minutes=2)
    assert ev.status is EvidenceStatus.OK and ev.name == "query_range"
    assert 0 < len(ev.data["range"]) <= 40
    empty = await prom.query_range('up{job="no-such-job"}', minutes=2)
    assert empty.status is EvidenceStatus.NO_DATA


async def test_label_values_cannot_inject_promql(scraped: Scraped,
                                                 prom: PrometheusEvidence) -> None:
    hostile = f'{JOB}"}} or vector(1) or up{{job="x'
    [up] = await prom.collect(ctx_for({"labels": {"job": hostile}}), [])
    assert up.name == "up"
    assert up.status is EvidenceStatus.NO_DATA, up  # matched literally: no such job


async def test_unreachable_prometheus_fails_fast() -> None:
    ev_source = PrometheusEvidence(f"http://127.0.0.1:{free_port()}", timeout_s=TIMEOUT_S)
    start = time.monotonic()
    results = await ev_source.collect(
        ctx_for(alert('up{job="x"} == 0', job="x", instance="h:1"), extra={"q": "up"}), [])
    elapsed = time.monotonic() - start
    assert [e.status for e in results] == [EvidenceStatus.ERROR] * 3
    assert all("ConnectionError" in (e.error or "") for e in results), results
    assert elapsed < TIMEOUT_S + 3, f"unreachable Prometheus took {elapsed:.2f}s"
    print(f"unreachable Prometheus: {len(results)} error evidences in {elapsed:.3f}s")


async def test_unanswering_prometheus_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # accepts via the kernel backlog, never answers
        source = PrometheusEvidence(f"http://127.0.0.1:{sock.getsockname()[1]}", timeout_s=1.0)
        start = time.monotonic()
        ev = await source.query("up")
        elapsed = time.monotonic() - start
    assert ev.status is EvidenceStatus.ERROR
    assert "timed out" in (ev.error or "") or "Timeout" in (ev.error or ""), ev.error
    assert elapsed < 1.0 + 3, f"took {elapsed:.2f}s"
    print(f"unanswering Prometheus: error after {elapsed:.3f}s")


# --- pure helpers (no Prometheus needed) --------------------------------------------------

def test_up_query_escapes_label_values() -> None:
    assert up_query("web", "h:1") == 'up{job="web",instance="h:1"}'
    assert up_query("web", None) == 'up{job="web"}'
    assert up_query('a"b\\c', "") == 'up{job="a\\"b\\\\c"}'


def test_summarise_instant_caps_series() -> None:
    result = [{"metric": {"i": str(i)}, "value": [0, str(i)]} for i in range(30)]
    status, data = summarise_instant("q", result)
    assert status is EvidenceStatus.OK
    assert data["value"] == 29.0 and len(data["series"]) == 20 and data["series_total"] == 30
    assert data["series"][0]["value"] == 29.0


def test_plan_deduplicates() -> None:
    source = PrometheusEvidence("http://127.0.0.1:1", timeout_s=1)
    ctx = ctx_for(alert("up == 0", job="a", instance="h:1"),
                  alert("up == 0", job="a", instance="h:1"),
                  alert("up == 0", job="a", instance="h:2"),
                  extra={"x": "rate(x[5m])", "empty": " "})
    assert source.plan(ctx) == [
        ("alert_expr", "up == 0", True),
        ("up", 'up{job="a",instance="h:1"}', False),
        ("up", 'up{job="a",instance="h:2"}', False),
        ("query:x", "rate(x[5m])", False),
    ]
