"""This process among the replicas on one database: who it is, and its heartbeat.

Every ``sre-agent serve`` process (any role) records itself in the store every
``heartbeat_s``; ``/status`` lists the replicas with their last heartbeat and the leases each
holds (a lease's owner is the replica's id). A replica silent for ``STALE_PERIODS`` heartbeats
is shown as stale: it died, hangs or cannot reach the database. A clean stop removes the row.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from sre_agent.ports import EventStore, StoreUnavailable

log = structlog.get_logger("sre_agent.replica")
STALE_PERIODS = 3


def replica_id() -> str:
    """This process's name among replicas: host, pid and a random suffix (unique per start)."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class ReplicaInfo:
    role: str
    version: str
    id: str = field(default_factory=replica_id)
    host: str = field(default_factory=lambda: socket.gethostname()[:255])
    pid: int = field(default_factory=os.getpid)
    started_at: float = field(default_factory=time.time)

    def row(self) -> dict[str, Any]:
        return asdict(self)


def is_stale(heartbeat_at: float, now: float, heartbeat_s: float) -> bool:
    return now - heartbeat_at > STALE_PERIODS * heartbeat_s


class Heartbeat:
    """Upserts this replica's row every ``period_s`` until stopped; a store outage is logged
    and the next beat tries again (the replica shows as stale meanwhile, which it is)."""

    def __init__(self, store: EventStore, replica: ReplicaInfo, period_s: float, *,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.replica, self.period_s, self.clock = store, replica, period_s, clock
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> bool:
        try:
            await self.store.heartbeat(self.replica.row(), self.clock())
        except StoreUnavailable as exc:
            log.warning("heartbeat_failed", replica=self.replica.id, error=str(exc))
            return False
        return True

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._loop(), name="replica-heartbeat")

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.period_s)
            await self.beat()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            await self.store.forget_replica(self.replica.id)
        except StoreUnavailable as exc:  # the row goes stale, as a crash's would
            log.warning("replica_forget_failed", replica=self.replica.id, error=str(exc))
