"""Injected faults: thread-safe state shared by every request handler.

Errors are deterministic (an accumulator, not a random draw): with ``rate=0.5`` exactly every
second ``GET /`` fails, so alerts and tests see the configured ratio without noise.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

MAX_LATENCY_MS = 60_000
MAX_LEAK_MB_PER_CALL = 512


@dataclass(frozen=True)
class FaultSnapshot:
    error_rate: float
    latency_s: float
    hung: bool
    leaked_bytes: int

    def as_dict(self) -> dict[str, float | bool | int]:
        return {"error_rate": self.error_rate, "latency_ms": round(self.latency_s * 1000),
                "hung": self.hung, "leaked_bytes": self.leaked_bytes}


class Faults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._error_rate = 0.0
        self._error_acc = 0.0
        self._latency_s = 0.0
        self._not_hung = threading.Event()
        self._not_hung.set()
        self._leak: list[bytes] = []
        self._leaked_bytes = 0

    # --- setters (validated; ValueError on bad input) ----------------------------------------
    def set_error_rate(self, rate: float) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        with self._lock:
            self._error_rate = rate
            self._error_acc = 0.0

    def set_latency_ms(self, ms: float) -> None:
        if not 0 <= ms <= MAX_LATENCY_MS:
            raise ValueError(f"ms must be between 0 and {MAX_LATENCY_MS}")
        with self._lock:
            self._latency_s = ms / 1000.0

    def hang(self) -> None:
        self._not_hung.clear()

    def leak(self, mb: float) -> int:
        """Allocate ``mb`` MiB and keep it; return the total held. Pages are written, so the
        resident set really grows."""
        if not 0 < mb <= MAX_LEAK_MB_PER_CALL:
            raise ValueError(f"mb must be in (0, {MAX_LEAK_MB_PER_CALL}]")
        block = b"\xa5" * int(mb * 1024 * 1024)
        with self._lock:
            self._leak.append(block)
            self._leaked_bytes += len(block)
            return self._leaked_bytes

    def clear(self) -> None:
        """Clear every fault (errors, latency, hang, leaked memory)."""
        with self._lock:
            self._error_rate = 0.0
            self._error_acc = 0.0
            self._latency_s = 0.0
            self._leak.clear()
            self._leaked_bytes = 0
        self._not_hung.set()

    # --- used by handlers ---------------------------------------------------------------------
    def wait_until_not_hung(self, timeout: float) -> bool:
        """Block while the hang fault is on; False if still hung after ``timeout`` seconds."""
        return self._not_hung.wait(timeout)

    def next_request_fails(self) -> bool:
        with self._lock:
            self._error_acc += self._error_rate
            if self._error_acc >= 1.0 - 1e-9:
                self._error_acc -= 1.0
                return True
            return False

    @property
    def latency_s(self) -> float:
        with self._lock:
            return self._latency_s

    @property
    def hung(self) -> bool:
        return not self._not_hung.is_set()

    def snapshot(self) -> FaultSnapshot:
        with self._lock:
            return FaultSnapshot(self._error_rate, self._latency_s, self.hung,
                                 self._leaked_bytes)
