"""The delivery worker: chat and paging messages, off the pipeline's critical path.

An outbox fed by the event log. The worker tails the log (every ``poll_s``); each incident
whose events moved is synced: its log is folded into an ``IncidentCard``, the routes say which
destinations get it, each destination says which messages it should have, and those whose
content changed since their last delivery are sent (level-triggered: a burst of events becomes
one update, a restart sends nothing twice). Every attempt is an event: a failed attempt that
will be retried ``NotificationAttempted`` (with the delay: ``Retry-After`` when the receiver
gave one, else exponential backoff), then ``NotificationDelivered`` or ``NotificationFailed``.
Those events do not move the incident (``DELIVERY_TYPES``), so they never wake the pipeline.

One incident is synced by one task at a time (a change meanwhile syncs it again after), each
sync ``settle_s`` after the change that caused it (the pipeline's burst lands first: one post
instead of a post and updates); ``concurrency`` incidents at once. The pipeline never waits
for any of it: a slow or down Slack delays only its own messages. With leases (several
replicas), a replica delivers an incident's messages only while it holds the ``delivery:``
lease of that incident: renewed every third of its TTL while the sync runs (a slow Slack, a
retry's wait), released after. A replica that finds the lease held skips the incident; every
half TTL each replica looks for ``delivery:`` leases that ran out (their holder died mid-sync)
and syncs those incidents itself, so a dead replica's messages go out about a TTL later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog

from sre_agent.domain.events import DELIVERY_TYPES, Actor, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import IncidentStatus
from sre_agent.domain.notifications import (
    CARD_TYPES,
    Delivered,
    IncidentCard,
    Message,
    Sent,
    delivered,
    incident_card,
)
from sre_agent.domain.routing import Routes
from sre_agent.ports import DELIVERY_LEASE_PREFIX, ChatDestination, EventStore, StoreUnavailable

log = structlog.get_logger("sre_agent.delivery")
MAX_ERROR = 300


class DeliveryWorker:
    def __init__(self, store: EventStore, destinations: Sequence[ChatDestination],
                 routes: Routes, base_url: str, *, poll_s: float = 1.0, max_attempts: int = 5,
                 backoff_s: float = 1.0, max_backoff_s: float = 60.0,
                 max_retry_after_s: float = 300.0, concurrency: int = 4,
                 settle_s: float = 0.3,
                 leases: bool = False, owner: str = "delivery", lease_ttl_s: float = 10.0,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.destinations = list(destinations)
        self.routes = routes
        self.base_url = base_url
        self.poll_s = poll_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_retry_after_s = max_retry_after_s
        self.settle_s = settle_s
        self.leases = leases
        self.owner = owner
        self.lease_ttl_s = lease_ttl_s
        self.sleep = sleep
        self.clock = clock
        self.cursor = 0
        self._limit = asyncio.Semaphore(concurrency)
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._watched_at = 0.0  # when run-out delivery leases were last looked for

    @property
    def enabled(self) -> bool:
        return bool(self.destinations)

    async def start(self) -> None:
        if not self.enabled:
            return
        self._tasks.append(asyncio.create_task(self._loop(), name="delivery"))

    async def stop(self) -> None:
        for task in [*self._tasks, *self._running.values()]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._running.values(), return_exceptions=True)
        self._tasks.clear()
        self._running.clear()
        for dest in self.destinations:
            await dest.close()

    def nudge(self) -> None:
        """Look at the log now rather than at the next poll (after an operator's click)."""
        self._wake.set()

    async def wait_idle(self, timeout: float = 30.0) -> None:
        """Until nothing is being synced and the log was read to its end (tests, shutdown)."""
        async def idle() -> None:
            while True:
                head = await self.store.last_event()
                if not self._running and (head is None or self.cursor >= head.seq):
                    return
                await asyncio.sleep(0.05)
        await asyncio.wait_for(idle(), timeout)

    # --- the loop -----------------------------------------------------------------------------
    async def _begin(self) -> None:
        """Where to start reading: after the last delivery event (everything before it was
        looked at), or at the head on a log that never delivered (no flood of old incidents);
        unresolved incidents are synced once either way."""
        last = await self.store.last_event(types=sorted(DELIVERY_TYPES))
        head = last if last is not None else await self.store.last_event()
        self.cursor = head.seq if head is not None else 0
        for status in (IncidentStatus.OPEN, IncidentStatus.ESCALATED):
            page = await self.store.list_incidents(status=status, limit=200)
            for item in page.items:
                self._schedule(str(item["id"]))

    async def _loop(self) -> None:
        started = False
        while True:
            try:
                if not started:
                    await self._begin()
                    started = True
                await self.scan()
                if self.leases:
                    await self.take_over()
            except StoreUnavailable as exc:
                log.warning("delivery_store_unavailable", error=str(exc))
            except Exception:  # a bug must not stop deliveries for good
                log.exception("delivery_scan_crashed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            self._wake.clear()

    async def scan(self) -> None:
        """Read the log past the cursor and schedule a sync of every incident that moved."""
        while True:
            batch = await self.store.list_events(since_seq=self.cursor, limit=1000)
            if not batch:
                return
            moved = {e.incident_id for e in batch
                     if e.incident_id is not None and e.type not in DELIVERY_TYPES}
            self.cursor = batch[-1].seq
            for incident_id in sorted(moved):
                self._schedule(incident_id)

    async def take_over(self) -> None:
        """Every half TTL: sync the incidents whose ``delivery:`` lease ran out. Its holder
        died mid-sync (or lost the store for a TTL); its own scan would have synced any later
        change, and nobody else would have, so the messages it owed would never go out."""
        now = self.clock()
        if now - self._watched_at < self.lease_ttl_s / 2:
            return
        self._watched_at = now
        for row in await self.store.list_leases(0.0):  # every lease row, run out or not
            key = str(row["incident_id"])
            if key.startswith(DELIVERY_LEASE_PREFIX) and float(row["expires_at"]) < now:
                self._schedule(key.removeprefix(DELIVERY_LEASE_PREFIX))

    def _schedule(self, incident_id: str) -> None:
        if incident_id in self._running:
            self._again.add(incident_id)
            return
        self._running[incident_id] = asyncio.create_task(
            self._run(incident_id), name=f"delivery-{incident_id}")

    async def _run(self, incident_id: str) -> None:
        try:
            while True:
                # Let the pipeline's burst of events land first: one message instead of a
                # post and two updates, and no write of ours in the middle of its run.
                await asyncio.sleep(self.settle_s)
                self._again.discard(incident_id)
                async with self._limit:
                    try:
                        await self.sync_leased(incident_id)
                    except StoreUnavailable as exc:
                        log.warning("delivery_sync_store_unavailable", incident_id=incident_id,
                                    error=str(exc))
                        await self.sleep(self.poll_s)
                        self._again.add(incident_id)
                    except Exception:
                        log.exception("delivery_sync_crashed", incident_id=incident_id)
                if incident_id not in self._again:
                    return
        finally:
            self._running.pop(incident_id, None)

    async def sync_leased(self, incident_id: str) -> None:
        """``sync`` under the incident's ``delivery:`` lease when replicas share the store."""
        if not self.leases:
            await self.sync(incident_id)
            return
        key = f"{DELIVERY_LEASE_PREFIX}{incident_id}"[:64]
        if not await self.store.claim(key, self.owner, self.lease_ttl_s, self.clock()):
            return  # another replica delivers this incident's messages
        renewal = asyncio.create_task(self._renew(key), name=f"delivery-lease-{incident_id}")
        try:
            await self.sync(incident_id)
        finally:
            renewal.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewal
            await self.store.release(key, self.owner)

    async def _renew(self, key: str) -> None:
        """Hold the lease for as long as the sync runs (one that was lost stays lost)."""
        while True:
            await asyncio.sleep(self.lease_ttl_s / 3)
            try:
                await self.store.renew([key], self.owner, self.lease_ttl_s, self.clock())
            except StoreUnavailable as exc:
                log.warning("delivery_lease_renewal_failed", key=key, error=str(exc))

    # --- one incident -------------------------------------------------------------------------
    async def sync(self, incident_id: str) -> int:
        """Send what the incident's destinations lack; returns how many messages went out."""
        incident = await self.store.get_incident(incident_id)
        if incident is None:
            return 0
        events = await self.store.list_events(incident_id=incident_id, types=list(CARD_TYPES),
                                              limit=1_000_000)
        card = incident_card(incident, events, self.base_url)
        have = delivered(events)
        wanted = self.routes.destinations_for(card.route_labels)
        sent = 0
        for dest in self.destinations:
            if dest.name not in wanted:
                continue
            tried: set[tuple[str, str]] = set()  # a failure waits for the next change
            for _ in range(3):  # a delivery may make another message due (resolved after post)
                mine = {key: d for (name, key), d in have.items() if name == dest.name}
                due = [m for m in dest.messages(card, mine)
                       if (mine.get(m.key) is None or mine[m.key].digest != m.digest)
                       and (m.key, m.digest) not in tried]
                if not due:
                    break
                for message in due:
                    tried.add((message.key, message.digest))
                    if await self._deliver(dest, message, mine.get(message.key), card):
                        sent += 1
                have = delivered(await self.store.list_events(
                    incident_id=incident_id, types=sorted(DELIVERY_TYPES), limit=1_000_000))
        return sent

    async def _deliver(self, dest: ChatDestination, message: Message, prior: Delivered | None,
                       card: IncidentCard) -> bool:
        bound = log.bind(incident_id=card.incident_id, destination=str(dest.name),
                         key=message.key, op=message.op)
        common: dict[str, Any] = {"destination": str(dest.name), "key": message.key,
                                  "op": message.op, "digest": message.digest,
                                  "upto_seq": card.upto_seq}
        for attempt in range(1, self.max_attempts + 1):
            try:
                result = await dest.send(message, prior)
            except Exception as exc:  # the port says never; a bug still must not loop
                result = Sent(ok=False, error=f"{type(exc).__name__}", retryable=False)
            if result.ok:
                await self._append(card, ev.NotificationDelivered(
                    **common, attempt=attempt, status_code=result.status_code,
                    channel=result.channel, ts=result.ts, link=result.link))
                bound.info("notification_delivered", attempt=attempt)
                return True
            error = result.error[:MAX_ERROR]
            if not result.retryable or attempt == self.max_attempts:
                await self._append(card, ev.NotificationFailed(
                    **common, attempt=attempt, status_code=result.status_code, error=error))
                bound.warning("notification_failed", attempt=attempt, error=error,
                              status_code=result.status_code)
                return False
            delay = self._delay(attempt, result.retry_after_s)
            await self._append(card, ev.NotificationAttempted(
                **common, attempt=attempt, status_code=result.status_code, error=error,
                retry_in_s=delay))
            bound.info("notification_retry", attempt=attempt, error=error, delay_s=delay,
                       status_code=result.status_code)
            await self.sleep(delay)
        return False  # not reached: the last attempt returns above

    def _delay(self, attempt: int, retry_after_s: float | None) -> float:
        if retry_after_s is not None:
            return max(0.0, min(retry_after_s, self.max_retry_after_s))
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))

    async def _append(self, card: IncidentCard, payload: ev.NotificationEvent) -> None:
        await self.store.append([NewEvent.of(payload, Actor.SYSTEM, card.incident_id)])
