"""The demo target, served for real on a free loopback port in a thread (a subprocess for the
real crash, SIGTERM and bad configuration)."""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from demo_target.app import ConfigError, DemoApp, DemoConfig
from demo_target.faults import Faults
from demo_target.traffic import SelfProbe, TrafficGenerator
from tests.support.components import free_port

SRC = Path(__file__).resolve().parents[2] / "src"


def request(method: str, url: str, timeout: float = 5.0) -> tuple[int, str, str]:
    """(status, body, content type); HTTP errors are answers too."""
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode(), resp.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), exc.headers.get("Content-Type", "")


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    status, body, _ = request("GET", url, timeout)
    return status, body


def post(url: str, timeout: float = 5.0) -> tuple[int, str]:
    status, body, _ = request("POST", url, timeout)
    return status, body


def metric(app: DemoApp, name: str, **labels: str) -> float:
    """A sample's value, scraped over HTTP and parsed with the Prometheus text parser."""
    _, text = get(f"{app.url}/metrics")
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    raise AssertionError(f"no sample {name}{labels} in /metrics")


def wait_for(predicate: object, timeout: float = 5.0, what: str = "condition") -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not reached within {timeout}s")


class ExitRecorder:
    def __init__(self) -> None:
        self.codes: list[int] = []
        self.called = threading.Event()

    def __call__(self, code: int) -> None:
        self.codes.append(code)
        self.called.set()


@pytest.fixture
def exits() -> ExitRecorder:
    return ExitRecorder()


@pytest.fixture
def app(exits: ExitRecorder) -> Iterator[DemoApp]:
    demo = DemoApp(DemoConfig(host="127.0.0.1", port=0, hang_max_s=30, work_iterations=1000),
                   exit_process=exits)
    demo.start()
    try:
        yield demo
    finally:
        demo.stop()


# --- plain endpoints ---------------------------------------------------------------------------

def test_root_does_work_and_is_counted(app: DemoApp) -> None:
    before = metric(app, "demo_requests_total", status="200")
    status, body = get(f"{app.url}/")
    assert status == 200 and '"status": "ok"' in body and '"digest"' in body
    assert metric(app, "demo_requests_total", status="200") == before + 1
    assert metric(app, "demo_request_duration_seconds_count") == 1
    assert metric(app, "demo_requests_total", status="500") == 0  # present from the start


def test_health_answers_ok(app: DemoApp) -> None:
    assert get(f"{app.url}/health") == (200, "ok\n")


def test_metrics_exposes_the_documented_families(app: DemoApp) -> None:
    status, text, ctype = request("GET", f"{app.url}/metrics")
    assert status == 200 and ctype.startswith("text/plain")  # 0.0.4 (0.16) or 1.0.0 (newer)
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    for expected in ("demo_requests_total", "demo_request_duration_seconds_bucket",
                     "demo_request_duration_seconds_count", "demo_memory_leak_bytes",
                     "demo_fault_active", "demo_health_probe_success",
                     "process_resident_memory_bytes", "process_cpu_seconds_total",
                     "python_info"):
        assert expected in names, expected
    assert 'le="0.5"' in text  # HighLatency's threshold is a bucket boundary


def test_unknown_paths_are_404(app: DemoApp) -> None:
    assert get(f"{app.url}/nope")[0] == 404
    assert post(f"{app.url}/fault/unknown")[0] == 404
    assert post(f"{app.url}/")[0] == 404


# --- faults ------------------------------------------------------------------------------------

def test_error_fault_fails_exactly_that_fraction(app: DemoApp) -> None:
    assert post(f"{app.url}/fault/errors?rate=0.5") == (200, '{"fault": "errors", "rate": 0.5}\n')
    statuses = [get(f"{app.url}/")[0] for _ in range(10)]
    assert statuses.count(500) == 5 and statuses.count(200) == 5
    assert metric(app, "demo_requests_total", status="500") == 5
    assert metric(app, "demo_fault_active", fault="errors") == 1
    assert get(f"{app.url}/health")[0] == 200  # errors do not touch health
    post(f"{app.url}/fault/errors?rate=0")
    assert all(get(f"{app.url}/")[0] == 200 for _ in range(5))
    assert metric(app, "demo_fault_active", fault="errors") == 0


@pytest.mark.parametrize("query", ["rate=1.5", "rate=-0.1", "rate=abc", ""])
def test_error_fault_rejects_bad_rates(app: DemoApp, query: str) -> None:
    status, body = post(f"{app.url}/fault/errors?{query}")
    assert status == 400 and "error" in body
    assert app.faults.snapshot().error_rate == 0


def test_latency_fault_slows_root_and_the_histogram_sees_it(app: DemoApp) -> None:
    assert post(f"{app.url}/fault/latency?ms=300")[0] == 200
    start = time.monotonic()
    assert get(f"{app.url}/")[0] == 200
    assert time.monotonic() - start >= 0.3
    assert metric(app, "demo_request_duration_seconds_bucket", le="0.25") == 0
    assert metric(app, "demo_request_duration_seconds_bucket", le="0.5") == 1
    start = time.monotonic()
    assert get(f"{app.url}/health")[0] == 200
    assert time.monotonic() - start < 0.3  # latency is on / only
    assert post(f"{app.url}/fault/latency?ms=-1")[0] == 400
    assert post(f"{app.url}/fault/latency?ms=999999")[0] == 400


def test_hang_blocks_health_and_root_but_not_metrics_until_cleared(app: DemoApp) -> None:
    assert post(f"{app.url}/fault/hang")[0] == 200
    for path in ("/health", "/"):
        with pytest.raises((TimeoutError, urllib.error.URLError)):
            get(f"{app.url}{path}", timeout=0.5)
    assert get(f"{app.url}/metrics", timeout=2)[0] == 200
    assert metric(app, "demo_fault_active", fault="hang") == 1

    answered: list[tuple[int, str]] = []
    waiter = threading.Thread(target=lambda: answered.append(get(f"{app.url}/health", 10)))
    waiter.start()
    time.sleep(0.3)
    assert not answered  # still blocked
    assert post(f"{app.url}/fault/clear")[0] == 200
    waiter.join(timeout=5)
    assert answered == [(200, "ok\n")]  # the blocked request completes once cleared
    assert get(f"{app.url}/health", timeout=2) == (200, "ok\n")


def test_a_hung_request_is_dropped_unanswered_after_hang_max(exits: ExitRecorder) -> None:
    demo = DemoApp(DemoConfig(port=0, hang_max_s=0.3), exit_process=exits)
    demo.start()
    try:
        post(f"{demo.url}/fault/hang")
        conn = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=5)
        conn.request("GET", "/health")
        start = time.monotonic()
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            conn.getresponse()
        assert 0.25 <= time.monotonic() - start < 3
        conn.close()
    finally:
        demo.stop()


def test_stop_also_ends_kept_alive_connections(exits: ExitRecorder) -> None:
    demo = DemoApp(DemoConfig(port=0), exit_process=exits)
    demo.start()
    conn = http.client.HTTPConnection("127.0.0.1", demo.port, timeout=5)
    try:
        conn.request("GET", "/metrics")
        assert conn.getresponse().read()  # HTTP/1.1: the connection stays open
        demo.stop()
        with pytest.raises((http.client.HTTPException, ConnectionError)):
            conn.request("GET", "/metrics")
            conn.getresponse()
    finally:
        conn.close()
        demo.stop()


def test_leak_fault_holds_memory_and_grows_the_gauge(app: DemoApp) -> None:
    # (The process-wide RSS of a shared pytest process is no reliable measure; the target image
    # test and the HighMemoryGrowth rule see the real growth.)
    status, body = post(f"{app.url}/fault/leak?mb=16")
    assert status == 200 and f'"total_bytes": {16 * 2**20}' in body
    assert post(f"{app.url}/fault/leak")[0] == 200  # default 10 MiB
    assert metric(app, "demo_memory_leak_bytes") == 26 * 2**20
    assert metric(app, "demo_fault_active", fault="leak") == 1
    assert post(f"{app.url}/fault/leak?mb=0")[0] == 400
    assert post(f"{app.url}/fault/leak?mb=100000")[0] == 400
    assert post(f"{app.url}/fault/clear")[0] == 200
    assert metric(app, "demo_memory_leak_bytes") == 0


def test_clear_resets_every_fault(app: DemoApp) -> None:
    for path in ("errors?rate=1", "latency?ms=50", "leak?mb=1", "hang"):
        assert post(f"{app.url}/fault/{path}")[0] == 200
    assert post(f"{app.url}/fault/clear") == (200, '{"fault": "clear"}\n')
    snap = app.faults.snapshot()
    assert (snap.error_rate, snap.latency_s, snap.hung, snap.leaked_bytes) == (0, 0, False, 0)
    assert get(f"{app.url}/", timeout=2)[0] == 200
    for name in ("errors", "latency", "hang", "leak"):
        assert metric(app, "demo_fault_active", fault=name) == 0


def test_crash_answers_first_then_exits_with_code_1(app: DemoApp,
                                                   exits: ExitRecorder) -> None:
    status, body = post(f"{app.url}/fault/crash")
    assert status == 200 and '"exit_code": 1' in body
    assert exits.called.wait(2)
    assert exits.codes == [1]


def test_one_log_line_per_fault(app: DemoApp, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("INFO", logger="demo_target")
    for path in ("errors?rate=0.5", "latency?ms=1", "leak?mb=1", "hang", "clear"):
        post(f"{app.url}/fault/{path}")
    messages = [r.getMessage() for r in caplog.records if r.name == "demo_target"]
    assert [m.split(":")[0] for m in messages] == [
        "fault errors", "fault latency", "fault leak", "fault hang", "fault clear"]
    assert "rate=0.5" in messages[0]
    get(f"{app.url}/")
    get(f"{app.url}/metrics")
    assert len([r for r in caplog.records if r.name == "demo_target"]) == 5  # no access log


def test_error_accumulator_is_exact() -> None:
    faults = Faults()
    for rate, expected in ((0.25, 25), (0.01, 1), (0.2, 20), (1.0, 100), (0.0, 0)):
        faults.set_error_rate(rate)
        assert sum(faults.next_request_fails() for _ in range(100)) == expected, rate


# --- built-in traffic and self probe -----------------------------------------------------------

def test_traffic_generator_calls_root(app: DemoApp) -> None:
    gen = TrafficGenerator(app, rps=50)
    gen.start()
    try:
        wait_for(lambda: metric(app, "demo_requests_total", status="200") >= 10,
                 what="10 generated requests")
    finally:
        gen.stop()


def test_traffic_generator_skips_instead_of_piling_up_while_hung(app: DemoApp) -> None:
    post(f"{app.url}/fault/hang")
    threads_before = threading.active_count()
    # The client timeout outlasts the test: a timed-out request would free its slot while its
    # server thread stays hung (up to DEMO_HANG_MAX_S), so the thread count would depend on
    # how slowly this machine reaches 20 skipped ticks.
    gen = TrafficGenerator(app, rps=100, timeout_s=60, max_in_flight=3)
    gen.start()
    try:
        wait_for(lambda: metric(app, "demo_traffic_errors_total", reason="skipped_busy") >= 20,
                 what="skipped ticks")
        # 3 client threads + their 3 blocked server threads + the loop, at most
        assert threading.active_count() - threads_before <= 3 * 2 + 1 + 2
        assert metric(app, "demo_traffic_errors_total", reason="no_answer") == 0
    finally:
        gen.stop()
        post(f"{app.url}/fault/clear")


def test_self_probe_reports_a_hang_and_recovers(app: DemoApp) -> None:
    probe = SelfProbe(app, interval_s=0.1, timeout_s=0.2)
    probe.start()
    try:
        wait_for(lambda: metric(app, "demo_health_probe_success") == 1, what="probe ok")
        post(f"{app.url}/fault/hang")
        wait_for(lambda: metric(app, "demo_health_probe_success") == 0, what="probe failing")
        assert metric(app, "demo_health_probe_duration_seconds") >= 0.1
        post(f"{app.url}/fault/clear")
        wait_for(lambda: metric(app, "demo_health_probe_success") == 1, what="probe recovered")
    finally:
        probe.stop()


# --- configuration and the real process --------------------------------------------------------

def test_config_from_env() -> None:
    assert DemoConfig.from_env({}) == DemoConfig()
    cfg = DemoConfig.from_env({"DEMO_HOST": "0.0.0.0", "DEMO_PORT": "9000",
                               "DEMO_TRAFFIC_RPS": "5", "DEMO_SELF_PROBE_INTERVAL_S": "0"})
    assert (cfg.host, cfg.port, cfg.traffic_rps, cfg.self_probe_interval_s) == (
        "0.0.0.0", 9000, 5.0, 0.0)
    for bad in ({"DEMO_PORT": "http"}, {"DEMO_PORT": "70000"}, {"DEMO_TRAFFIC_RPS": "-1"}):
        with pytest.raises(ConfigError):
            DemoConfig.from_env(bad)


def _spawn(port: int, **env: str) -> subprocess.Popen[str]:
    full_env = {**os.environ, "PYTHONPATH": str(SRC), "DEMO_PORT": str(port),
                "DEMO_SELF_PROBE_INTERVAL_S": "0", **env}
    return subprocess.Popen([sys.executable, "-m", "demo_target"], env=full_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_serving(proc: subprocess.Popen[str], port: int) -> None:
    def up() -> bool:
        assert proc.poll() is None, proc.communicate()[0]
        try:
            return get(f"http://127.0.0.1:{port}/health", timeout=1)[0] == 200
        except OSError:
            return False
    wait_for(up, timeout=15, what="demo_target serving")


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait(timeout=5)


def test_process_crash_exits_with_code_1_and_logs_it() -> None:
    port = free_port()
    proc = _spawn(port, DEMO_TRAFFIC_RPS="5")
    try:
        _wait_serving(proc, port)
        assert post(f"http://127.0.0.1:{port}/fault/crash")[0] == 200
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 1
        assert "listening on 127.0.0.1" in out and "traffic_rps=5" in out
        assert "fault crash: exiting with code 1" in out
    finally:
        _stop(proc)


def test_process_stops_promptly_on_sigterm() -> None:
    port = free_port()
    proc = _spawn(port)
    try:
        _wait_serving(proc, port)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=5)
        assert proc.returncode == 0 and "shutting down" in out
    finally:
        _stop(proc)


def test_process_refuses_bad_configuration() -> None:
    proc = _spawn(free_port(), DEMO_TRAFFIC_RPS="lots")
    try:
        out, _ = proc.communicate(timeout=10)
        assert proc.returncode == 2 and "DEMO_TRAFFIC_RPS='lots' is not a number" in out
    finally:
        _stop(proc)
