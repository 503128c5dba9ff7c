"""Ingest before analysis: in one process, the pipeline waits while webhooks are in flight.

An ``all`` process both acknowledges webhooks and analyses incidents. An analysis is several
milliseconds of CPU; one that runs while a webhook waits for its write holds the event loop and
the GIL from it, and on two cores doubled the time to acknowledge (benchmarks/webhook_roles.py).
Alertmanager waits on the acknowledgement (and retries after its timeout); an analysis can
start a few milliseconds later. So before each stage the runner calls ``wait_turn``: it returns
at once when no webhook is in flight, else when the last one is answered, and never later than
``max_defer_s``, which bounds how long a sustained flood of webhooks holds analysis back (each
worker still starts a stage at least every ``max_defer_s``). A worker process (``--role
worker``) has no webhooks: its analysis yields the CPU to the api by its nice level instead
(``SRE_AGENT_WORKER_NICE``, cli/serve.py).
"""

from __future__ import annotations

import asyncio
import time


class IngestFirst:
    """Counts webhooks in flight; the pipeline waits for a quiet moment before each stage."""

    def __init__(self, max_defer_s: float = 0.05) -> None:
        self.max_defer_s = max_defer_s
        self._in_flight = 0
        self._quiet = asyncio.Event()
        self._quiet.set()
        self.deferred_s = 0.0  # how long stages waited in all

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def enter(self) -> None:
        """A webhook arrived (call ``leave`` once it is answered, whatever the outcome)."""
        self._in_flight += 1
        self._quiet.clear()

    def leave(self) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        if self._in_flight == 0:
            self._quiet.set()

    async def wait_turn(self) -> float:
        """Return once no webhook is in flight, or after ``max_defer_s`` at the latest; the
        seconds waited."""
        if self._in_flight == 0 or self.max_defer_s <= 0:
            return 0.0
        started = time.perf_counter()
        try:
            await asyncio.wait_for(self._quiet.wait(), self.max_defer_s)
        except TimeoutError:
            pass  # a flood: this stage runs anyway, so analysis is slowed, never stopped
        finally:
            waited = time.perf_counter() - started
            self.deferred_s += waited
        return waited
