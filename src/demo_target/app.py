"""The demo target: a small HTTP service with Prometheus metrics and injectable faults.

Endpoints (see monitoring/README.md for the alerts they drive):

- ``GET /``         a few ms of hashing; 200, or 500 per the error fault; plus injected latency
- ``GET /health``   200 "ok"; never answers while the hang fault is on
- ``GET /metrics``  Prometheus text; keeps answering while hung (Prometheus sees ``up == 1``,
                    the health probe fails: a hung service, not a dead one)
- ``POST /fault/crash``             answer, then exit with code 1
- ``POST /fault/hang``              ``/`` and ``/health`` stop answering
- ``POST /fault/errors?rate=0.5``   this fraction of ``GET /`` answers 500
- ``POST /fault/latency?ms=800``    added latency on ``GET /``
- ``POST /fault/leak[?mb=10]``      allocate and keep ``mb`` MiB (default 10)
- ``POST /fault/clear``             clear every fault but a crash

Only the standard library and prometheus-client (>= 0.16, Debian bookworm's) are used.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from demo_target.faults import Faults

log = logging.getLogger("demo_target")
FAULT_NAMES = ("errors", "latency", "hang", "leak")


class ConfigError(ValueError):
    pass


def _env_number(env: Mapping[str, str], name: str, default: float, low: float,
                high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}={raw!r} must be between {low:g} and {high:g}")
    return value


@dataclass(frozen=True)
class DemoConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    traffic_rps: float = 0.0          # 0 = no built-in traffic
    self_probe_interval_s: float = 5.0  # 0 = no self probe of /health
    hang_max_s: float = 60.0          # a hung request is dropped unanswered after this long
    work_iterations: int = 10_000     # pbkdf2 rounds per GET / (about 3 ms)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DemoConfig:
        e = os.environ if env is None else env
        return cls(
            host=e.get("DEMO_HOST", "").strip() or cls.host,
            port=int(_env_number(e, "DEMO_PORT", cls.port, 0, 65535)),
            traffic_rps=_env_number(e, "DEMO_TRAFFIC_RPS", cls.traffic_rps, 0, 1000),
            self_probe_interval_s=_env_number(e, "DEMO_SELF_PROBE_INTERVAL_S",
                                              cls.self_probe_interval_s, 0, 3600),
            hang_max_s=_env_number(e, "DEMO_HANG_MAX_S", cls.hang_max_s, 0.1, 86400),
            work_iterations=int(_env_number(e, "DEMO_WORK_ITERATIONS", cls.work_iterations,
                                            1, 10_000_000)))


class DemoMetrics:
    """Every metric on its own registry, so several servers can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("demo_requests", "GET / requests by HTTP status",
                                ["status"], registry=r)
        self.duration = Histogram("demo_request_duration_seconds",
                                  "GET / handling time, injected latency included", registry=r)
        self.leak_bytes = Gauge("demo_memory_leak_bytes",
                                "Bytes held by the leak fault", registry=r)
        self.fault_active = Gauge("demo_fault_active", "1 while the fault is injected",
                                  ["fault"], registry=r)
        self.probe_success = Gauge(
            "demo_health_probe_success",
            "1 if the last self probe of /health answered 200 in time, 0 if not", registry=r)
        self.probe_duration = Gauge("demo_health_probe_duration_seconds",
                                    "Duration of the last self probe of /health", registry=r)
        self.traffic_errors = Counter("demo_traffic_errors",
                                      "Built-in traffic requests that got no answer",
                                      ["reason"], registry=r)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        for status in ("200", "500"):  # both series exist from the start: ratios are 0, not empty
            self.requests.labels(status=status)
        for name in FAULT_NAMES:
            self.fault_active.labels(fault=name).set(0)
        for reason in ("skipped_busy", "no_answer"):
            self.traffic_errors.labels(reason=reason)
        self.probe_success.set(1)


class DemoHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: DemoApp

    def __init__(self, address: tuple[str, int]) -> None:
        self.open_connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self.open_connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self.open_connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections too, so a stopped server stops answering (as a dead
        process would) instead of serving scrapes on Prometheus' open connection."""
        with self._connections_lock:
            connections = list(self.open_connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return  # the client gave up (e.g. on a hung request): nothing to report
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    server_version = "demo-target/1"
    protocol_version = "HTTP/1.1"

    @property
    def app(self) -> DemoApp:
        return cast(DemoHTTPServer, self.server).app

    def log_message(self, format: str, *args: object) -> None:
        pass  # no access log: one line per fault is the contract

    # --- plumbing -----------------------------------------------------------------------------
    def _send(self, status: int, body: bytes, content_type: str = "text/plain; charset=utf-8",
              ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def _send_json(self, status: int, payload: object) -> None:
        self._send(status, json.dumps(payload).encode() + b"\n", "application/json")

    def _drop_if_hung(self) -> bool:
        """Block while hung; True (and the connection closed unanswered) if it never ends."""
        if self.app.faults.wait_until_not_hung(self.app.config.hang_max_s):
            return False
        self.close_connection = True
        return True

    # --- GET ----------------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path == "/":
            self._root()
        elif path == "/health":
            if not self._drop_if_hung():
                self._send(200, b"ok\n")
        elif path == "/metrics":
            self._send(200, generate_latest(self.app.metrics.registry), CONTENT_TYPE_LATEST)
        else:
            self._send_json(404, {"error": f"no such endpoint: GET {path}"})

    def _root(self) -> None:
        start = time.perf_counter()
        if self._drop_if_hung():
            return
        app = self.app
        digest = hashlib.pbkdf2_hmac("sha256", b"demo-target", os.urandom(8),
                                     app.config.work_iterations).hex()[:16]
        latency = app.faults.latency_s
        if latency > 0:
            time.sleep(latency)
        status = 500 if app.faults.next_request_fails() else 200
        app.metrics.duration.observe(time.perf_counter() - start)
        app.metrics.requests.labels(status=str(status)).inc()
        if status == 500:
            self._send_json(500, {"status": "error", "error": "injected fault"})
        else:
            self._send_json(200, {"status": "ok", "digest": digest})

    # --- POST /fault/* ------------------------------------------------------------------------
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        action = FAULT_ACTIONS.get(parts.path)
        if action is None:
            self._send_json(404, {"error": f"no such endpoint: POST {parts.path}"})
            return
        try:
            reply = action(self.app, query)
        except ValueError as exc:
            self._send_json(400, {"error": str(exc)})
            return
        self._send_json(200, reply)
        if parts.path == "/fault/crash":
            self.close_connection = True
            self.app.crash_soon()


def _number(query: Mapping[str, str], name: str, default: float | None = None) -> float:
    raw = query.get(name)
    if raw is None:
        if default is None:
            raise ValueError(f"query parameter {name!r} is required")
        return default
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None


def _errors(app: DemoApp, q: Mapping[str, str]) -> dict[str, object]:
    rate = _number(q, "rate")
    app.faults.set_error_rate(rate)
    app.fault_changed("errors", rate > 0, f"rate={rate:g}")
    return {"fault": "errors", "rate": rate}


def _latency(app: DemoApp, q: Mapping[str, str]) -> dict[str, object]:
    ms = _number(q, "ms")
    app.faults.set_latency_ms(ms)
    app.fault_changed("latency", ms > 0, f"ms={ms:g}")
    return {"fault": "latency", "ms": ms}


def _hang(app: DemoApp, q: Mapping[str, str]) -> dict[str, object]:
    app.faults.hang()
    app.fault_changed("hang", True, "/ and /health stop answering")
    return {"fault": "hang"}


def _leak(app: DemoApp, q: Mapping[str, str]) -> dict[str, object]:
    mb = _number(q, "mb", 10.0)
    total = app.faults.leak(mb)
    app.metrics.leak_bytes.set(total)
    app.fault_changed("leak", True, f"mb={mb:g} total_bytes={total}")
    return {"fault": "leak", "mb": mb, "total_bytes": total}


def _clear(app: DemoApp, q: Mapping[str, str]) -> dict[str, object]:
    app.faults.clear()
    app.metrics.leak_bytes.set(0)
    for name in FAULT_NAMES:
        app.metrics.fault_active.labels(fault=name).set(0)
    log.info("fault clear: all faults cleared")
    return {"fault": "clear"}


def _crash(app: DemoApp, q: Mapping[str, str]) -> dict[str, object]:
    log.info("fault crash: exiting with code 1")
    return {"fault": "crash", "exit_code": 1}


FaultAction = Callable[["DemoApp", Mapping[str, str]], dict[str, object]]
FAULT_ACTIONS: dict[str, FaultAction] = {
    "/fault/crash": _crash, "/fault/hang": _hang, "/fault/errors": _errors,
    "/fault/latency": _latency, "/fault/leak": _leak, "/fault/clear": _clear,
}


class DemoApp:
    """The server, its metrics and faults. ``start()`` serves in a thread (tests);
    ``serve_forever()`` blocks (``python3 -m demo_target``)."""

    def __init__(self, config: DemoConfig | None = None, *,
                 exit_process: Callable[[int], object] = os._exit) -> None:
        self.config = config or DemoConfig()
        self.faults = Faults()
        self.metrics = DemoMetrics()
        self._exit_process = exit_process
        self.httpd = DemoHTTPServer((self.config.host, self.config.port))
        self.httpd.app = self
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def url(self) -> str:
        host = self.config.host if self.config.host not in ("0.0.0.0", "") else "127.0.0.1"  # noqa: S104
        return f"http://{host}:{self.port}"

    def fault_changed(self, name: str, active: bool, detail: str) -> None:
        self.metrics.fault_active.labels(fault=name).set(1 if active else 0)
        log.info("fault %s: %s", name, detail)

    def crash_soon(self, delay_s: float = 0.05) -> None:
        """Exit the whole process with code 1, just after the reply has gone out."""
        def _go() -> None:
            time.sleep(delay_s)
            for handler in logging.getLogger().handlers:
                handler.flush()
            self._exit_process(1)
        threading.Thread(target=_go, name="crash", daemon=True).start()

    def start(self) -> None:
        self._thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                        name="demo-http", daemon=True)
        self._thread.start()

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Release hung handlers, stop serving and close the socket."""
        self.faults.clear()
        if self._thread is not None:
            self.httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self.httpd.server_close()
        self.httpd.close_connections()
