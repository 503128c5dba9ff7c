"""Apply one stored event to the projection tables. Used by appends and by rebuilds alike."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, case, delete, insert, select, update
from sqlalchemy.sql.expression import ClauseElement

from sre_agent.domain.diagnosis import with_explanation
from sre_agent.domain.events import DELIVERY_TYPES, EventType, StoredEvent
from sre_agent.domain.incident import IncidentStatus
from sre_agent.store.projections_actions import apply_action_event
from sre_agent.store.schema import alerts, control, incidents

# The statements of the AlertReceived path, built once (see _LOCK_HEAD in store/sql_writer.py).
_INSERT_INCIDENT = insert(incidents)
_INSERT_ALERTS = insert(alerts)
_COUNT_ALERTS = update(incidents).where(incidents.c.id == bindparam("incident")).values(
    last_seq=bindparam("seq"), updated_at=bindparam("at"),
    alerts_total=incidents.c.alerts_total + bindparam("received"),
    alerts_firing=incidents.c.alerts_firing + bindparam("received"))


# An incident row's plain changes (values, no SQL expressions), SET columns from the keys.
_UPDATE_INCIDENT = update(incidents).where(incidents.c.id == bindparam("incident_key"))
# Events whose projection reads the incident row: pending touches are written before them.
_READS_INCIDENT = frozenset({EventType.VERIFICATION_PASSED, EventType.DIAGNOSIS_EXPLAINED,
                             EventType.INCIDENT_RESOLVED})


class Touches:
    """The plain changes of an incident's row, merged over a run of events and written as one
    UPDATE per incident: a pipeline append (evidence, diagnosis, proposals) is one UPDATE of
    the incident, not one per event. Later values win, as one UPDATE per event would leave
    them. Written before any statement that reads or changes the row otherwise (``flush``)."""

    def __init__(self) -> None:
        self.pending: dict[str, dict[str, Any]] = {}

    def add(self, incident_id: str, changes: dict[str, Any]) -> None:
        self.pending.setdefault(incident_id, {}).update(changes)

    def flush(self, conn: Connection) -> None:
        for incident_id, changes in self.pending.items():
            conn.execute(_UPDATE_INCIDENT, {**changes, "incident_key": incident_id})
        self.pending.clear()


def _set_control(conn: Connection, key: str, value: str) -> None:
    conn.execute(delete(control).where(control.c.key == key))
    conn.execute(insert(control).values(key=key, value=value))


def _alert_row(ev: StoredEvent) -> dict[str, Any]:
    d = ev.data
    return {
        "incident_id": ev.incident_id,
        "fingerprint": d["fingerprint"],
        "starts_at": d["starts_at"],
        "status": d["status"],
        "alertname": d["labels"].get("alertname", ""),
        "labels": d["labels"],
        "annotations": d["annotations"],
        "generator_url": d["generator_url"],
        "ends_at": d["ends_at"],
        "received_seq": ev.seq,
    }  # read from the raw data: the batched AlertReceived path must stay cheap


def _incident_row(ev: StoredEvent) -> dict[str, Any]:
    return {
        "id": ev.incident_id, "group_key": ev.data["group_key"], "status": IncidentStatus.OPEN,
        "title": ev.data["title"], "severity": ev.data["severity"], "opened_at": ev.at,
        "updated_at": ev.at, "resolved_at": None, "opened_seq": ev.seq, "last_seq": ev.seq,
        "alerts_total": 0, "alerts_firing": 0,
    }


def apply_event(conn: Connection, ev: StoredEvent, touches: Touches | None = None) -> None:
    """Project one event. With ``touches``, the incident's plain changes wait there (the
    caller flushes them); without, they are written at once."""
    t = ev.type
    if touches is not None and t in _READS_INCIDENT:
        touches.flush(conn)
    apply_action_event(conn, ev)
    if t == EventType.INCIDENT_OPENED:
        conn.execute(_INSERT_INCIDENT, _incident_row(ev))
        return
    if t in (EventType.MODE_CHANGED, EventType.PAUSED, EventType.RESUMED):
        if t == EventType.MODE_CHANGED:
            _set_control(conn, "mode", ev.data["mode"])
        else:
            _set_control(conn, "paused", "true" if t == EventType.PAUSED else "false")
        return
    if ev.incident_id is None or t in DELIVERY_TYPES:
        return
    changes: dict[str, Any] = {"last_seq": ev.seq, "updated_at": ev.at}
    if t == EventType.ALERT_RECEIVED:
        conn.execute(insert(alerts).values(**_alert_row(ev)))
        changes["alerts_total"] = incidents.c.alerts_total + 1
        changes["alerts_firing"] = incidents.c.alerts_firing + 1
    elif t == EventType.ALERT_RESOLVED:
        row = _alert_row(ev)
        found = conn.execute(
            select(alerts.c.id, alerts.c.status).where(
                alerts.c.fingerprint == row["fingerprint"], alerts.c.starts_at == row["starts_at"])
        ).first()
        if found is None:
            conn.execute(insert(alerts).values(**row))
            changes["alerts_total"] = incidents.c.alerts_total + 1
        else:
            conn.execute(update(alerts).where(alerts.c.id == found.id).values(
                status="resolved", ends_at=row["ends_at"]))
            if found.status == "firing":
                changes["alerts_firing"] = case(
                    (incidents.c.alerts_firing > 0, incidents.c.alerts_firing - 1), else_=0)
    elif t == EventType.ALERT_RECEIVED_LATE:
        row = _alert_row(ev)  # its firing is now known: a redelivery of it is a duplicate
        conn.execute(update(alerts).where(
            alerts.c.fingerprint == row["fingerprint"], alerts.c.starts_at == row["starts_at"]
        ).values(received_seq=ev.seq))
    elif t == EventType.INCIDENT_RESOLVED:
        changes["status"] = IncidentStatus.RESOLVED
        changes["resolved_at"] = ev.at
    elif t == EventType.INCIDENT_ESCALATED:
        changes["status"] = case(
            (incidents.c.status == IncidentStatus.RESOLVED, incidents.c.status),
            else_=IncidentStatus.ESCALATED)
    elif t == EventType.DIAGNOSIS_PRODUCED:
        changes["diagnosis"] = ev.data
    elif t == EventType.DIAGNOSIS_EXPLAINED:
        current = conn.execute(select(incidents.c.diagnosis).where(
            incidents.c.id == ev.incident_id)).scalar()
        if isinstance(current, dict):
            changes["diagnosis"] = with_explanation(current, ev.data)
    if touches is not None:
        if not any(isinstance(v, ClauseElement) for v in changes.values()):
            touches.add(ev.incident_id, changes)
            return
        touches.flush(conn)  # an expression over the row: the earlier changes go first
    conn.execute(update(incidents).where(incidents.c.id == ev.incident_id).values(**changes))


def apply_events(conn: Connection, evs: list[StoredEvent]) -> None:
    """Apply events in order, as ``apply_event`` would one by one, in fewer statements: runs of
    AlertReceived are batched (one INSERT, one UPDATE per incident), an incident opened
    just before its alerts is inserted with their counts (no UPDATE at all), and the other
    events' plain changes to an incident are merged into one UPDATE (``Touches``). A 1-alert
    notification that opens an incident is two INSERTs; 5,000 alerts are a handful."""
    opened: dict[str, dict[str, Any]] = {}  # IncidentOpened rows not inserted yet
    batch: list[StoredEvent] = []
    touches = Touches()  # incidents' plain changes, one UPDATE each (see Touches)

    def flush() -> None:
        if opened or batch:
            touches.flush(conn)  # the alert counts' UPDATE sets last_seq too: in order
        if opened:
            conn.execute(_INSERT_INCIDENT, list(opened.values()))
        if batch:
            conn.execute(_INSERT_ALERTS, [_alert_row(ev) for ev in batch])
        per_incident: dict[str, list[StoredEvent]] = {}
        for ev in batch:
            if ev.incident_id not in opened:  # those rows went in with their counts
                per_incident.setdefault(str(ev.incident_id), []).append(ev)
        for incident_id, items in per_incident.items():
            conn.execute(_COUNT_ALERTS, {"incident": incident_id, "seq": items[-1].seq,
                                         "at": items[-1].at, "received": len(items)})
        opened.clear()
        batch.clear()

    for ev in evs:
        if ev.type == EventType.ALERT_RECEIVED and ev.incident_id is not None:
            batch.append(ev)
            row = opened.get(ev.incident_id)
            if row is not None:
                row.update(last_seq=ev.seq, updated_at=ev.at,
                           alerts_total=row["alerts_total"] + 1,
                           alerts_firing=row["alerts_firing"] + 1)
            continue
        if ev.type == EventType.INCIDENT_OPENED and ev.incident_id is not None:
            opened[ev.incident_id] = _incident_row(ev)  # IncidentOpened touches nothing else
            continue
        flush()
        apply_event(conn, ev, touches)
    flush()
    touches.flush(conn)
