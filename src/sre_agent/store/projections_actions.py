"""Projections of the action lifecycle: actions, circuit breakers, per-(alert, action) stats."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from sre_agent.domain.actions import (
    STATUS_BY_EVENT,
    ActionStatus,
    action_changes,
    action_transition,
    new_action_row,
)
from sre_agent.domain.events import EventType, StoredEvent, payloads
from sre_agent.store.schema import action_stats, actions, breakers, incidents

# The statements of every action event, built once (see store/sql.py). An update's SET
# columns come from the parameters' keys (each key set compiles once, then is cached); the
# row's id is bound as ``action_id``, a name no column has.
_INSERT_ACTION = insert(actions)
_UPDATE_ACTION = update(actions).where(actions.c.id == bindparam("action_id"))
_ACTION_STATS_KEY = select(actions.c.alertname, actions.c.kind).where(
    actions.c.id == bindparam("action_id"))
_ACTION_RESULT = select(actions.c.result).where(actions.c.id == bindparam("action_id"))


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


_RELEVANT = frozenset(STATUS_BY_EVENT) | {EventType.BREAKER_TRIPPED, EventType.BREAKER_RESET,
                                          EventType.INCIDENT_RESOLVED}


def apply_action_event(conn: Connection, ev: StoredEvent) -> None:
    if ev.type not in _RELEVANT:
        return  # cheap: most events (alerts) are not about actions
    p = ev.payload
    if isinstance(p, payloads.BreakerTripped | payloads.BreakerReset):
        conn.execute(delete(breakers).where(breakers.c.target == p.target))
        conn.execute(insert(breakers).values(
            target=p.target, state="open" if isinstance(p, payloads.BreakerTripped) else "closed",
            reason=p.reason, changed_at=ev.at))
        return
    if isinstance(p, payloads.IncidentResolved) and ev.incident_id:
        _record_recoveries(conn, ev)
        return
    step = action_transition(ev)
    if step is None:
        return
    now = _ts(ev.at)
    if isinstance(p, payloads.ActionProposed):
        conn.execute(_INSERT_ACTION, new_action_row(ev, p, now))
        return
    changes = action_changes(step, now, lambda: _current_result(conn, step.action_id))
    conn.execute(_UPDATE_ACTION, {**changes, "action_id": step.action_id})
    if isinstance(p, payloads.VerificationPassed) and ev.incident_id:
        _record_late_recovery(conn, ev.incident_id, step.action_id)
    if step.attempt:
        row = conn.execute(_ACTION_STATS_KEY, {"action_id": step.action_id}).first()
        if row is not None:
            _bump_stats(conn, row.alertname, row.kind, attempts=1,
                        successes=1 if step.success else 0)


def _current_result(conn: Connection, action_id: str) -> dict[str, Any]:
    row = conn.execute(_ACTION_RESULT, {"action_id": action_id}).first()
    return dict(row.result or {}) if row else {}


def _record_late_recovery(conn: Connection, incident_id: str, action_id: str) -> None:
    """A recovery counts once both have happened: the action verified and the incident
    resolved. When `resolved` arrived first (Alertmanager can be quicker than the stability
    window), the verification is the second and records it."""
    inc = conn.execute(select(incidents.c.opened_at, incidents.c.resolved_at)
                       .where(incidents.c.id == incident_id)).first()
    row = conn.execute(_ACTION_STATS_KEY, {"action_id": action_id}).first()
    if inc is None or inc.resolved_at is None or row is None:
        return
    seconds = max(0.0, _ts(inc.resolved_at) - _ts(inc.opened_at))
    _bump_stats(conn, row.alertname, row.kind, recoveries=1, recovery_seconds_total=seconds)


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
