"""Projections of the action lifecycle: actions, circuit breakers, per-(alert, action) stats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, insert, select, update

from sre_agent.domain.actions import STATUS_BY_EVENT, ActionStatus
from sre_agent.domain.events import EventType, StoredEvent
from sre_agent.store.schema import action_stats, actions, breakers, incidents


def _ts(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def _bump_stats(conn: Connection, alertname: str, kind: str, **deltas: float) -> None:
    row = conn.execute(select(action_stats).where(action_stats.c.alertname == alertname,
                                                  action_stats.c.kind == kind)).first()
    if row is None:
        conn.execute(insert(action_stats).values(
            alertname=alertname, kind=kind, attempts=0, successes=0, recoveries=0,
            recovery_seconds_total=0.0))
    conn.execute(update(action_stats).where(
        action_stats.c.alertname == alertname, action_stats.c.kind == kind).values(
        **{k: getattr(action_stats.c, k) + v for k, v in deltas.items()}))


def apply_action_event(conn: Connection, ev: StoredEvent) -> None:
    t = ev.type
    d = ev.data
    if t == EventType.BREAKER_TRIPPED or t == EventType.BREAKER_RESET:
        conn.execute(delete(breakers).where(breakers.c.target == d["target"]))
        conn.execute(insert(breakers).values(
            target=d["target"], state="open" if t == EventType.BREAKER_TRIPPED else "closed",
            reason=d.get("reason", ""), changed_at=ev.at))
        return
    if t == EventType.INCIDENT_RESOLVED and ev.incident_id:
        _record_recoveries(conn, ev)
        return
    status = STATUS_BY_EVENT.get(t)
    if status is None or "action_id" not in d:
        return
    now = _ts(ev.at)
    if t == EventType.ACTION_PROPOSED:
        conn.execute(insert(actions).values(
            id=d["action_id"], incident_id=ev.incident_id, kind=d["kind"], target=d.get("target"),
            alertname=d.get("alertname", ""), reason=d.get("reason", ""), status=status,
            proposal=d.get("proposal", {}), idempotency_key=d["idempotency_key"],
            proposed_at=ev.at, updated_at=ev.at, updated_ts=now))
        return
    changes: dict[str, Any] = {"status": status, "updated_at": ev.at, "updated_ts": now}
    if "reason" in d:
        changes["decision_reason"] = d["reason"]
    if t in (EventType.ACTION_APPROVED, EventType.ACTION_REJECTED):
        changes["decided_by"] = ev.actor
    if t == EventType.ACTION_STARTED:
        changes["started_ts"] = now
    if t in (EventType.ACTION_SUCCEEDED, EventType.ACTION_FAILED):
        changes["finished_ts"] = now
        changes["result"] = d.get("result", {})
    if t in (EventType.VERIFICATION_PASSED, EventType.VERIFICATION_FAILED):
        changes["result"] = {**(_current_result(conn, d["action_id"])),
                             "verification": d.get("result", {})}
    conn.execute(update(actions).where(actions.c.id == d["action_id"]).values(**changes))
    # The track record counts finished attempts only: an action still being verified is neither
    # a success nor a failure yet (counting it at ActionStarted made in-flight restarts look
    # like failures and sent the next incident to approval).
    if t in (EventType.VERIFICATION_PASSED, EventType.VERIFICATION_FAILED,
             EventType.ACTION_FAILED):
        row = conn.execute(select(actions.c.alertname, actions.c.kind)
                           .where(actions.c.id == d["action_id"])).first()
        if row is not None:
            passed = 1 if t == EventType.VERIFICATION_PASSED else 0
            _bump_stats(conn, row.alertname, row.kind, attempts=1, successes=passed)


def _current_result(conn: Connection, action_id: str) -> dict[str, Any]:
    row = conn.execute(select(actions.c.result).where(actions.c.id == action_id)).first()
    return dict(row.result or {}) if row else {}


def _record_recoveries(conn: Connection, ev: StoredEvent) -> None:
    """Time to recover: from the incident opening to its resolution, per verified action."""
    inc = conn.execute(select(incidents.c.opened_at).where(incidents.c.id == ev.incident_id)
                       ).first()
    if inc is None:
        return
    seconds = max(0.0, _ts(ev.at) - _ts(inc.opened_at))
    for row in conn.execute(select(actions.c.alertname, actions.c.kind).where(
            actions.c.incident_id == ev.incident_id,
            actions.c.status == ActionStatus.VERIFIED)).all():
        _bump_stats(conn, row.alertname, row.kind, recoveries=1, recovery_seconds_total=seconds)
