"""Ingest before analysis: in one process, pipeline work waits while webhooks are in flight.

An ``all`` process both acknowledges webhooks and analyses incidents. An analysis is several
milliseconds of CPU and a dozen store calls; one that runs while a webhook waits for its write
holds the event loop, the GIL and the store's writer thread from it, and on two cores doubled
the time to acknowledge (benchmarks/webhook_roles.py). Alertmanager waits on the
acknowledgement (and retries after its timeout); an analysis can start a few milliseconds
later.

So the runner marks its worker tasks as background work (``run_in_background``), and every
store read and write (``yield_to_ingest``, store/sql_writer.py) made from such a task first
waits its turn: at once when no webhook is in flight, else when the last one is answered, and
never later than ``max_defer_s``, which bounds how long a sustained flood of webhooks holds one
call back (the analysis is slowed, never stopped). Calls from anything else (the webhook's own
ingest, operators, the chat delivery) never wait. asyncio copies the context into the tasks a
worker starts, so evidence collected in parallel is background work too.

Between processes (``--role api`` beside ``--role worker`` on one host) there is no such gate:
lowering the worker's nice level was measured and made no difference to the api's
acknowledgements (docs/benchmarks.md). Any layer may import this module: it needs asyncio only.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from contextvars import ContextVar


class IngestFirst:
    """Counts webhooks in flight; background work waits for a quiet moment."""

    def __init__(self, max_defer_s: float = 0.05) -> None:
        self.max_defer_s = max_defer_s
        self._in_flight = 0
        # Futures of the calls waiting, made on the waiting loop (an asyncio.Event would bind
        # to the first loop that waits on it, and an app may run under several in turn).
        self._waiters: list[asyncio.Future[None]] = []
        self.deferred_s = 0.0  # how long background work waited in all (a metric)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def enter(self) -> None:
        """A webhook arrived (call ``leave`` once it is answered, whatever the outcome)."""
        self._in_flight += 1

    def leave(self) -> None:
        self._in_flight = max(0, self._in_flight - 1)
        if self._in_flight == 0:
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    async def wait_turn(self) -> float:
        """Return once no webhook is in flight, or after ``max_defer_s`` at the latest; the
        seconds waited."""
        if self._in_flight == 0 or self.max_defer_s <= 0:
            return 0.0
        started = time.perf_counter()
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            with contextlib.suppress(TimeoutError):  # a flood: the call runs anyway (slowed)
                await asyncio.wait_for(waiter, self.max_defer_s)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
        waited = time.perf_counter() - started
        self.deferred_s += waited
        return waited


_background: ContextVar[IngestFirst | None] = ContextVar("sre_agent_background", default=None)


def run_in_background(gate: IngestFirst) -> None:
    """Mark the current task (and the tasks it starts) as background work yielding to
    ``gate``; called at the top of each pipeline worker task."""
    _background.set(gate)


async def yield_to_ingest() -> float:
    """In background work, wait for the gate's turn; elsewhere return at once. The seconds
    waited."""
    gate = _background.get()
    if gate is None:
        return 0.0
    return await gate.wait_turn()
