"""The replicas on the dashboard: who runs, in which role, its last heartbeat and its leases."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sre_agent.web.views import Badge, fmt_duration, fmt_time

LIVE = Badge("ok", "✓", "alive")
STALE = Badge("bad", "✕", "stale")


@dataclass(frozen=True)
class ReplicaRow:
    id: str
    role: str
    where: str  # host and pid
    version: str
    started: str
    heartbeat: str  # "2.1s ago"
    state: Badge
    leases: list[str]
    this: bool


def replica_rows(status: Mapping[str, Any]) -> list[ReplicaRow]:
    """From the ``/status`` JSON's ``replicas``; the one answering is marked."""
    return [ReplicaRow(
        id=str(r["id"]), role=str(r["role"]), where=f"{r['host']} pid {r['pid']}",
        version=str(r["version"]), started=fmt_time(r.get("started_at")),
        heartbeat=f"{fmt_duration(r.get('heartbeat_age_s'))} ago",
        state=STALE if r.get("stale") else LIVE, leases=[str(i) for i in r.get("leases") or []],
        this=bool(r.get("this"))) for r in status.get("replicas") or []]
