"""Evidence reads shared between incidents for a moment (``SRE_AGENT_EVIDENCE_CACHE_S``).

In a storm many incidents name the same container, health URL or PromQL expression within a
second of each other: one Docker inspect, one probe, one query answers all of them. Concurrent
askers share the read in flight; an answer is reused for ``ttl_s`` after its read began. A
reused answer says so: the collector records ``cached_age_s`` (seconds from the start of the
shared read to this incident's asking) beside the data, and its ``duration_ms`` is this
incident's wait. Failures are never reused (every incident tries for itself), and ``ttl_s``
0 turns sharing off: every incident reads for itself.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 4096


class RecentReads(Generic[T]):
    def __init__(self, ttl_s: float, *, keep: Callable[[T], bool] = lambda _v: True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = max(0.0, ttl_s)
        self.keep = keep  # whether an answer may be reused (not a failure)
        self.clock = clock
        self._done: dict[Hashable, tuple[float, T]] = {}  # key -> (read began, answer)
        self._flight: dict[Hashable, tuple[float, asyncio.Task[T]]] = {}

    async def get(self, key: Hashable,
                  read: Callable[[], Awaitable[T]]) -> tuple[T, float | None]:
        """The answer for ``key`` and, when it was shared, its age in seconds (None: this
        caller's own read). Cancelling a caller never cancels a read others wait for."""
        if self.ttl_s <= 0:
            return await read(), None
        now = self.clock()
        done = self._done.get(key)
        if done is not None and now - done[0] <= self.ttl_s:
            return done[1], round(now - done[0], 3)
        loop = asyncio.get_running_loop()
        flight = self._flight.get(key)
        if flight is not None and not flight[1].done() and flight[1].get_loop() is loop:
            return await asyncio.shield(flight[1]), round(now - flight[0], 3)
        task = loop.create_task(self._read(key, now, read))
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # never unretrieved
        self._flight[key] = (now, task)
        return await asyncio.shield(task), None

    async def _read(self, key: Hashable, began: float, read: Callable[[], Awaitable[T]]) -> T:
        try:
            value = await read()
        finally:
            if self._flight.get(key, (None, None))[1] is asyncio.current_task():
                del self._flight[key]
        if self.keep(value):
            if len(self._done) >= MAX_ENTRIES:
                now = self.clock()
                self._done = {k: v for k, v in self._done.items()
                              if now - v[0] <= self.ttl_s}
                if len(self._done) >= MAX_ENTRIES:
                    self._done.clear()
            self._done[key] = (began, value)
        return value
