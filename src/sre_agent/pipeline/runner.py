"""The asynchronous worker: incidents queue up after ingest and are processed one at a time each.

Work is serialised per incident (never two workers on one incident), spread across incidents,
and resumed at start-up for every incident whose log moved past what was processed.

With ``leases`` (several replicas on one PostgreSQL database), a worker first claims the
incident's lease in the store: one replica at a time runs an incident's stages; a lease is
renewed while its stages run and released after; the lease of a replica that died runs out
after ``lease_ttl_s``, and every replica looks for leases that ran out about once a second,
so another takes the incident over within a TTL and a second (the sweep is the safety net).

With ``poll_s`` (a worker, or an ``all`` replica on PostgreSQL) the runner also finds work by
itself: every ``poll_s`` it submits the pending incidents nobody holds a lease on, which is how
alerts ingested and commands given on another replica (an ``api`` one) reach it. A runner made
with ``active=False`` (an ``api`` replica) runs nothing: ``submit`` is a no-op there, since the
events are already in the store where the workers' polls find them.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence

import structlog

from sre_agent.ingest_first import IngestFirst, run_in_background
from sre_agent.observability import Metrics
from sre_agent.pipeline.stages import Stage, load_work
from sre_agent.ports import DELIVERY_LEASE_PREFIX, EventStore, StoreUnavailable

log = structlog.get_logger("sre_agent.runner")


class PipelineRunner:
    def __init__(self, store: EventStore, stages: Sequence[Stage], *, workers: int = 2,
                 stage_timeout_s: float = 60.0, metrics: Metrics | None = None,
                 retry_base_s: float = 2.0, retry_max_s: float = 60.0,
                 max_retries: int = 8, sweep_s: float = 30.0, leases: bool = False,
                 lease_ttl_s: float = 10.0, owner: str | None = None,
                 poll_s: float | None = None, active: bool = True,
                 ingest_first: IngestFirst | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.stages = list(stages)
        self.workers = workers
        self.stage_timeout_s = stage_timeout_s
        self.metrics = metrics
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.max_retries = max_retries
        self.sweep_s = sweep_s
        self.leases = leases
        self.lease_ttl_s = lease_ttl_s
        self.takeover_s = min(1.0, lease_ttl_s / 3)
        self.owner = owner or replica_id()
        self.poll_s = poll_s
        self.active = active
        self.ingest_first = ingest_first or IngestFirst(max_defer_s=0)
        self.clock = clock
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._again: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self.processed = 0
        self._failures: dict[str, int] = {}
        self._retries: dict[str, asyncio.TimerHandle] = {}

    def submit(self, incident_id: str) -> None:
        if not self.active:
            return
        if incident_id in self._running:
            self._again.add(incident_id)
        elif incident_id not in self._queued:
            self._queued.add(incident_id)
            self._idle.clear()
            self._queue.put_nowait(incident_id)

    async def start(self) -> None:
        if not self.active:
            return
        for i in range(self.workers):
            self._tasks.append(asyncio.create_task(self._worker(), name=f"pipeline-{i}"))
        await self.resume()
        self._tasks.append(asyncio.create_task(self._sweep(), name="pipeline-sweep"))
        if self.poll_s is not None:
            self._tasks.append(asyncio.create_task(self._poll(), name="pipeline-poll"))
        if self.leases:
            self._tasks.append(asyncio.create_task(self._renew(), name="pipeline-leases"))
            self._tasks.append(asyncio.create_task(self._take_over(), name="pipeline-takeover"))

    async def resume(self, *, polling: bool = False) -> int:
        """Submit every incident whose log moved past what was processed and that nothing here
        is queued, running or waiting to retry: at start-up, and periodically, so runs given up
        during a store outage resume by themselves once it is back.

        A poll (``polling``) leaves out incidents leased by anyone and those whose retries ran
        out here; only the slower sweep gives the latter a new round of retries."""
        try:
            pending = await self.store.pending_incidents(
                unleased_at=self.clock() if polling and self.leases else None)
        except StoreUnavailable as exc:
            if not polling:
                log.warning("resume_failed", error=str(exc))
            return 0
        fresh = [i for i in pending if i not in self._queued and i not in self._running
                 and i not in self._retries
                 and not (polling and self._failures.get(i, 0) > self.max_retries)]
        for incident_id in fresh:
            self._failures.pop(incident_id, None)  # a new round of retries
            self.submit(incident_id)
        if fresh:
            (log.debug if polling else log.info)("resumed_incidents", count=len(fresh),
                                                 polling=polling)
        return len(fresh)

    async def _poll(self) -> None:
        assert self.poll_s is not None
        while True:
            await asyncio.sleep(self.poll_s)
            await self.resume(polling=True)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_s)
            await self.resume()

    async def _renew(self) -> None:
        """Keep the leases of the incidents running here from running out."""
        while True:
            await asyncio.sleep(self.lease_ttl_s / 3)
            try:
                await self.store.renew(sorted(self._running), self.owner, self.lease_ttl_s,
                                       self.clock())
            except StoreUnavailable as exc:
                log.warning("lease_renewal_failed", error=str(exc))

    async def _take_over(self) -> None:
        """Every ``takeover_s``, submit the incidents whose lease ran out (its holder died, or
        could not release it): they are taken over within a TTL and a second of the holder's
        last renewal, not at the next sweep. The replica that died was often the only one to
        submit the incident: an HA pair's second delivery of an alert is a duplicate, and a
        duplicate does not submit."""
        while True:
            await asyncio.sleep(self.takeover_s)
            try:
                rows = await self.store.list_leases(0.0)  # every lease row, run out or not
            except StoreUnavailable as exc:
                log.warning("lease_watch_failed", error=str(exc))
                continue
            now = self.clock()
            for row in rows:
                incident_id = str(row["incident_id"])
                if incident_id.startswith(DELIVERY_LEASE_PREFIX):
                    continue  # the delivery worker's, not pipeline work
                if float(row["expires_at"]) < now and incident_id not in self._queued \
                        and incident_id not in self._running and incident_id not in self._retries:
                    log.info("lease_ran_out", incident_id=incident_id, owner=row["owner"])
                    self.submit(incident_id)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        for handle in self._retries.values():  # incl. those the cancelled runs' cleanup set
            handle.cancel()
        self._retries.clear()
        for stage in self.stages:  # stages with work of their own (the LLM's explanations)
            stop = getattr(stage, "stop", None)
            if stop is not None:
                await stop()

    async def wait_idle(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._idle.wait(), timeout)

    @property
    def backlog(self) -> int:
        return len(self._queued) + len(self._running)

    async def _worker(self) -> None:
        run_in_background(self.ingest_first)  # its store calls wait while webhooks are in flight
        while True:
            incident_id = await self._queue.get()
            self._queued.discard(incident_id)
            self._running.add(incident_id)
            ok = False
            try:
                ok = await self._process_leased(incident_id)
            except StoreUnavailable as exc:  # an outage, not a bug: retried with backoff
                log.warning("incident_store_unavailable", incident_id=incident_id,
                            error=str(exc))
            except Exception:  # a bug in one incident must not kill the worker
                log.exception("incident_processing_crashed", incident_id=incident_id)
            finally:
                self._after(incident_id, ok)
                self._running.discard(incident_id)
                if incident_id in self._again:
                    self._again.discard(incident_id)
                    self.submit(incident_id)
                if not self._queued and not self._running:
                    self._idle.set()

    def _after(self, incident_id: str, ok: bool) -> None:
        """A failed run (store outage, a stage timing out) is retried with backoff, so an
        incident is never left waiting for the next restart or the next alert."""
        if ok:
            self._failures.pop(incident_id, None)
            return
        attempt = self._failures.get(incident_id, 0) + 1
        self._failures[incident_id] = attempt
        if attempt > self.max_retries:
            log.error("incident_retries_exhausted", incident_id=incident_id, attempts=attempt)
            return
        delay = min(self.retry_max_s, self.retry_base_s * 2 ** (attempt - 1))
        old = self._retries.pop(incident_id, None)
        if old is not None:
            old.cancel()
        self._retries[incident_id] = asyncio.get_running_loop().call_later(
            delay, self._retry, incident_id)
        log.warning("incident_retry_scheduled", incident_id=incident_id, attempt=attempt,
                    delay_s=delay)

    def _retry(self, incident_id: str) -> None:
        self._retries.pop(incident_id, None)
        self.submit(incident_id)

    async def _process_leased(self, incident_id: str) -> bool:
        if not self.leases:
            return await self.process(incident_id)
        if not await self.store.claim(incident_id, self.owner, self.lease_ttl_s, self.clock()):
            # Another replica works on it; when it stops, its lease runs out and the lease
            # watch here or elsewhere picks the incident up. Nothing to retry now.
            log.debug("incident_leased_elsewhere", incident_id=incident_id)
            return True
        try:
            ok = await self.process(incident_id, release_owner=self.owner)
        except asyncio.CancelledError:
            # Stopped mid-run (shutdown): the lease is kept, so it runs out within a TTL and
            # another replica's lease watch takes the incident over; a released lease would
            # leave it to the next sweep.
            log.info("lease_left_to_run_out", incident_id=incident_id)
            raise
        except BaseException:
            await self._release(incident_id)
            raise
        if not ok:  # a completed run released its lease as it marked the incident processed
            await self._release(incident_id)
        return ok

    async def _release(self, incident_id: str) -> None:
        try:
            await self.store.release(incident_id, self.owner)
        except StoreUnavailable as exc:  # it runs out by itself
            log.warning("lease_release_failed", incident_id=incident_id, error=str(exc))

    async def process(self, incident_id: str, *, release_owner: str | None = None) -> bool:
        """Run every stage once for the incident; True when all stages completed (and then,
        with ``release_owner``, that owner's lease is released in the same write that marks
        the incident processed: one transaction, not two).

        Processed, afterwards, is what this run saw: the log as the first stage found it, plus
        the events the stages appended themselves. An event anyone else appended meanwhile (a
        new alert, a command, another replica) leaves the incident pending: here it comes
        back through ``submit`` (``_again``), elsewhere through the next poll or sweep. The
        run's own events do not, so an incident is not run a second time for them."""
        bound = log.bind(incident_id=incident_id)
        seen_seq: int | None = None
        own: set[int] = set()
        for stage in self.stages:
            work = await load_work(self.store, incident_id)
            if work is None:
                return False
            if seen_seq is None:
                seen_seq = int(work.incident["last_seq"])
            started = time.perf_counter()
            try:
                appended = await asyncio.wait_for(stage.run(work, self.store),
                                                  self.stage_timeout_s)
            except Exception as exc:
                if self.metrics:
                    self.metrics.stage_errors.labels(stage.name).inc()
                bound.error("stage_failed", stage=stage.name, error=repr(exc)[:300])
                return False  # retried with backoff, and picked up again at the next start
            finally:
                if self.metrics:
                    self.metrics.stage_seconds.labels(stage.name).observe(
                        time.perf_counter() - started)
            own.update(e.seq for e in appended or () if e.incident_id == incident_id)
        await self.store.mark_processed(incident_id, seen_seq, own=frozenset(own),
                                        release_owner=release_owner)
        self.processed += 1
        return True


def replica_id() -> str:
    """This process's name among replicas: host, pid and a random suffix (unique per start)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
