"""Proposing an action again: after the kill switch is released or a breaker is reset (the
actions they blocked, on incidents still open), or when an operator asks for it.

A new proposal is a new action (new id, its own idempotency key) that goes through the gate
like any other: nothing is run because it was once proposed. The old action keeps its outcome.
"""

from __future__ import annotations

import uuid
from typing import Any

from sre_agent.domain.events import EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import IncidentStatus
from sre_agent.domain.policy import ReasonCode
from sre_agent.ports import EventStore

_SCAN_LIMIT = 5000


def again(row: dict[str, Any], actor: str, why: str) -> NewEvent:
    """An ActionProposed for the same kind and target as ``row``, as a new action."""
    prefix, _, attempt = str(row["idempotency_key"]).rpartition(":")
    key = f"{prefix or row['idempotency_key']}#{uuid.uuid4().hex[:8]}:{attempt or '1'}"
    return NewEvent.of(ev.ActionProposed(
        action_id="act-" + uuid.uuid4().hex[:16], idempotency_key=key, kind=row["kind"],
        target=row["target"], alertname=row["alertname"],
        reason=f"{why}: {row['reason']}"[:500], proposal=row["proposal"]),
        actor, row["incident_id"])


async def blocked_since(store: EventStore, since_seq: int, code: ReasonCode,
                        target: str | None = None) -> list[dict[str, Any]]:
    """Actions blocked with ``code`` after ``since_seq`` (for ``target``, when given) whose
    incident is still open, newest block per (incident, kind, target) only."""
    blocks = await store.list_events(types=[EventType.ACTION_BLOCKED], since_seq=since_seq,
                                     limit=_SCAN_LIMIT)
    rows: dict[tuple[str, str, str | None], dict[str, Any]] = {}
    for event in blocks:
        payload = event.payload
        if not isinstance(payload, ev.ActionBlocked) or payload.code != code.value:
            continue
        row = await store.get_action(payload.action_id)
        if row is None or (target is not None and row["target"] != target):
            continue
        incident = await store.get_incident(str(row["incident_id"]))
        if incident is None or incident["status"] == IncidentStatus.RESOLVED:
            continue
        rows[(str(row["incident_id"]), str(row["kind"]), row["target"])] = row
    return list(rows.values())


async def last_seq_of(store: EventStore, event_type: EventType,
                      target: str | None = None) -> int:
    """The seq of the latest ``event_type`` event (for ``target``), 0 when there is none."""
    if target is None:
        last = await store.last_event([event_type])
        return last.seq if last is not None else 0
    seq, cursor = 0, 0
    while True:
        batch = await store.list_events(types=[event_type], since_seq=cursor,
                                        limit=_SCAN_LIMIT)
        for event in batch:
            if target is None or getattr(event.payload, "target", None) == target:
                seq = event.seq
        if len(batch) < _SCAN_LIMIT:
            return seq
        cursor = batch[-1].seq
