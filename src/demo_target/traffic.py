"""Built-in clients of the target's own HTTP port.

- ``TrafficGenerator``: ``GET /`` at ``rps`` so rate-based alerts (errors, latency) have data
  without an external load generator. At most ``max_in_flight`` requests at once; a tick that
  finds them all busy (hung or very slow target) is skipped and counted, so a hang cannot pile
  up threads.
- ``SelfProbe``: ``GET /health`` every ``interval_s`` with a short timeout, exported as
  ``demo_health_probe_success``: a stand-in for a blackbox exporter (none is available offline),
  which makes a hang visible to Prometheus while ``/metrics`` (and so ``up``) stays fine.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

from demo_target.app import DemoApp


def _get(url: str, timeout: float) -> int:
    """The HTTP status of ``GET url`` (4xx/5xx included); raises OSError when none came."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (own URL)
            resp.read()
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        exc.read()
        return int(exc.code)


class _Loop:
    def __init__(self, name: str, interval_s: float) -> None:
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self.tick()
            next_at += self.interval_s
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind: do not burst to catch up
                next_at, delay = time.monotonic(), 0.0
            self._stop.wait(delay)

    def tick(self) -> None:
        raise NotImplementedError


class TrafficGenerator(_Loop):
    def __init__(self, app: DemoApp, rps: float, *, timeout_s: float = 5.0,
                 max_in_flight: int = 8) -> None:
        super().__init__("demo-traffic", 1.0 / rps)
        self.app = app
        self.timeout_s = timeout_s
        self._slots = threading.BoundedSemaphore(max_in_flight)

    def tick(self) -> None:
        if not self._slots.acquire(blocking=False):
            self.app.metrics.traffic_errors.labels(reason="skipped_busy").inc()
            return
        threading.Thread(target=self._one, name="demo-traffic-req", daemon=True).start()

    def _one(self) -> None:
        try:
            _get(f"{self.app.url}/", self.timeout_s)
        except OSError:
            self.app.metrics.traffic_errors.labels(reason="no_answer").inc()
        finally:
            self._slots.release()


class SelfProbe(_Loop):
    def __init__(self, app: DemoApp, interval_s: float, *, timeout_s: float = 2.0) -> None:
        super().__init__("demo-self-probe", interval_s)
        self.app = app
        self.timeout_s = min(timeout_s, interval_s)

    def tick(self) -> None:
        start = time.perf_counter()
        try:
            ok = _get(f"{self.app.url}/health", self.timeout_s) == 200
        except OSError:
            ok = False
        self.app.metrics.probe_duration.set(time.perf_counter() - start)
        self.app.metrics.probe_success.set(1 if ok else 0)
