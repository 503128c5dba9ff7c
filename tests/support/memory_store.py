"""InMemoryEventStore: the EventStore port in memory, for fast unit tests of the core.

It keeps the real guarantees that the handlers rely on: a gap-free hash chain (the domain's
``event_hash``), atomic appends, ``append_guarded`` checking the action's status, idempotent
ingest (the domain's ``correlate``), and projections applied with the same domain rules as the
SQL store (``action_transition``, ``action_changes``, ``gate_history_of``).
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from sre_agent.domain.actions import (
    action_changes,
    action_transition,
    gate_history_of,
    history_since,
    new_action_row,
)
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.events import (
    DELIVERY_TYPES,
    GENESIS_HASH,
    EventType,
    NewEvent,
    StoredEvent,
    event_hash,
    payloads,
    verify_chain,
)
from sre_agent.domain.incident import CorrelationSnapshot, IncidentStatus, KnownAlert, correlate
from sre_agent.domain.policy import GateHistory
from sre_agent.ports import (
    IncidentPage,
    IncidentSnapshot,
    IngestResult,
    StoreUnavailable,
    VerifyResult,
)


def _ts(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


class InMemoryEventStore:
    """Implements ``sre_agent.ports.EventStore``. ``clock`` gives event times (tests move it)."""

    def __init__(self, clock: Any = None) -> None:
        self.events: list[StoredEvent] = []
        self.incidents: dict[str, dict[str, Any]] = {}
        self.alerts: list[dict[str, Any]] = []
        self.actions: dict[str, dict[str, Any]] = {}
        self.breakers: dict[str, dict[str, Any]] = {}
        self.stats: dict[tuple[str, str], dict[str, Any]] = {}
        self.control: dict[str, str] = {}
        self.processed: dict[str, int] = {}
        self.leases: dict[str, dict[str, Any]] = {}
        self.replicas: dict[str, dict[str, Any]] = {}
        self.inbox: dict[int, str] = {}
        self._inbox_ids = itertools.count(1)
        self.clock = clock or (lambda: datetime.now(UTC).timestamp())
        self.unavailable = False  # set True to make every write raise StoreUnavailable
        self._ids = itertools.count(1)

    # --- writes -------------------------------------------------------------------------------
    def _check(self) -> None:
        if self.unavailable:
            raise StoreUnavailable("in-memory store set unavailable")

    def _append(self, new: list[NewEvent]) -> list[StoredEvent]:
        at = datetime.fromtimestamp(self.clock(), UTC).isoformat(timespec="microseconds")
        stored = []
        for ev in new:
            prev = self.events[-1].hash if self.events else GENESIS_HASH
            seq = len(self.events) + 1
            data = dict(ev.data)
            h = event_hash(seq=seq, incident_id=ev.incident_id, type=str(ev.type), at=at,
                           actor=ev.actor, data=data, prev_hash=prev)
            s = StoredEvent(seq, ev.incident_id, ev.type, at, ev.actor, data, prev, h)
            self.events.append(s)
            self._project(s)
            stored.append(s)
        return stored

    async def append(self, events: list[NewEvent]) -> list[StoredEvent]:
        self._check()
        return self._append(events)

    async def append_guarded(self, action_id: str, allowed: frozenset[str],
                             new: list[NewEvent]) -> list[StoredEvent] | None:
        self._check()
        row = self.actions.get(action_id)
        if row is None or row["status"] not in allowed:
            return None
        return self._append(new)

    async def append_expecting(self, incident_id: str, last_seq: int,
                               new: list[NewEvent]) -> list[StoredEvent] | None:
        self._check()
        row = self.incidents.get(incident_id)
        if row is None or int(row["last_seq"]) != last_seq:
            return None
        return self._append(new)

    async def ingest(self, notification: WebhookNotification) -> IngestResult:
        self._check()
        n = notification
        open_ids = [i for i, inc in self.incidents.items()
                    if inc["group_key"] == n.group_key and inc["status"] != IncidentStatus.RESOLVED]
        snap = CorrelationSnapshot(open_incident_id=open_ids[-1] if open_ids else None)
        for a in self.alerts:
            key = (a["fingerprint"], a["starts_at"])
            fired = self.events[a["received_seq"] - 1].type != EventType.ALERT_RESOLVED
            snap.alerts[key] = KnownAlert(a["incident_id"], a["status"],
                                          seen_firing=a["status"] != "resolved" or fired)
            snap.incident_alerts.setdefault(a["incident_id"], {})[key] = a["status"]
        result = correlate(n, snap, lambda: f"inc-{next(self._ids):04d}")
        stored = self._append(result.events)
        return IngestResult(result.touched, result.new_alerts, result.duplicates, stored,
                            result.duplicate_of, result.late)

    async def enqueue(self, body: str) -> int:
        self._check()
        inbox_id = next(self._inbox_ids)
        self.inbox[inbox_id] = body
        return inbox_id

    async def queued(self, limit: int = 100) -> list[tuple[int, str]]:
        return sorted(self.inbox.items())[:limit]

    async def inbox_depth(self) -> int:
        return len(self.inbox)

    async def ingest_queued(self, inbox_id: int,
                            notification: WebhookNotification) -> IngestResult | None:
        self._check()
        if self.inbox.pop(inbox_id, None) is None:
            return None
        return await self.ingest(notification)

    async def mark_processed(self, incident_id: str, seq: int | None,
                             own: frozenset[int] = frozenset(),
                             release_owner: str | None = None) -> None:
        if release_owner is not None:
            await self.release(incident_id, release_owner)
        through = int(self.incidents[incident_id]["last_seq"]) if seq is None else seq
        for e in self.events:
            if e.incident_id != incident_id or e.seq <= through or e.type in DELIVERY_TYPES:
                continue
            if e.seq not in own:
                break
            through = e.seq
        self.processed[incident_id] = through

    # --- leases -------------------------------------------------------------------------------
    async def claim(self, incident_id: str, owner: str, ttl_s: float, now: float) -> bool:
        held = self.leases.get(incident_id)
        if held is not None and held["owner"] != owner and held["expires_at"] >= now:
            return False
        self.leases[incident_id] = {"incident_id": incident_id, "owner": owner,
                                    "expires_at": now + ttl_s, "claimed_at": now}
        return True

    async def renew(self, incident_ids: list[str], owner: str, ttl_s: float,
                    now: float) -> None:
        for incident_id in incident_ids:
            held = self.leases.get(incident_id)
            if held is not None and held["owner"] == owner:
                held["expires_at"] = now + ttl_s

    async def release(self, incident_id: str, owner: str) -> None:
        if self.leases.get(incident_id, {}).get("owner") == owner:
            del self.leases[incident_id]

    async def list_leases(self, now: float) -> list[dict[str, Any]]:
        return sorted((dict(v) for v in self.leases.values() if v["expires_at"] >= now),
                      key=lambda v: float(v["expires_at"]))

    # --- replicas -----------------------------------------------------------------------------
    async def heartbeat(self, replica: dict[str, Any], now: float) -> None:
        self.replicas[str(replica["id"])] = {**replica, "heartbeat_at": now}

    async def forget_replica(self, replica_id: str) -> None:
        self.replicas.pop(replica_id, None)

    async def list_replicas(self) -> list[dict[str, Any]]:
        return sorted((dict(r) for r in self.replicas.values()),
                      key=lambda r: (float(r["started_at"]), str(r["id"])))

    async def rebuild_projections(self) -> int:
        events, self.events = self.events, []
        self.incidents, self.alerts, self.actions = {}, [], {}
        self.breakers, self.stats, self.control, self.processed = {}, {}, {}, {}
        for ev in events:
            self.events.append(ev)
            self._project(ev)
        return len(events)

    async def writable(self) -> bool:
        return not self.unavailable

    async def close(self) -> None:
        return None

    # --- projections (the same domain rules as store/projections*.py) -------------------------
    def _project(self, ev: StoredEvent) -> None:
        p, inc = ev.payload, self.incidents.get(ev.incident_id or "")
        if isinstance(p, payloads.IncidentOpened):
            self.incidents[str(ev.incident_id)] = {
                "id": ev.incident_id, "group_key": p.group_key, "status": IncidentStatus.OPEN,
                "title": p.title, "severity": p.severity, "opened_at": ev.at,
                "updated_at": ev.at, "resolved_at": None, "opened_seq": ev.seq,
                "last_seq": ev.seq, "alerts_total": 0, "alerts_firing": 0, "diagnosis": None}
        elif isinstance(p, payloads.ModeChanged):
            self.control["mode"] = p.mode
        elif isinstance(p, payloads.Paused | payloads.Resumed):
            self.control["paused"] = "true" if isinstance(p, payloads.Paused) else "false"
        elif isinstance(p, payloads.BreakerTripped | payloads.BreakerReset):
            self.breakers[p.target] = {
                "target": p.target, "reason": p.reason, "changed_at": ev.at,
                "state": "open" if isinstance(p, payloads.BreakerTripped) else "closed"}
        elif inc is not None and ev.type not in DELIVERY_TYPES:
            self._project_incident(ev, p, inc)
        self._project_action(ev, p)

    def _project_incident(self, ev: StoredEvent, p: payloads.EventPayload,
                          inc: dict[str, Any]) -> None:
        inc["last_seq"], inc["updated_at"] = ev.seq, ev.at
        if isinstance(p, payloads.AlertReceived | payloads.AlertResolved):
            key = (p.fingerprint, p.starts_at)
            found = next((a for a in self.alerts
                          if (a["fingerprint"], a["starts_at"]) == key), None)
            if found is None:
                self.alerts.append({"id": len(self.alerts) + 1, "incident_id": ev.incident_id,
                                    "alertname": p.labels.get("alertname", ""),
                                    "received_seq": ev.seq, **p.model_dump()})
                inc["alerts_total"] += 1
                inc["alerts_firing"] += 1 if p.status == "firing" else 0
            else:
                if found["status"] == "firing" and p.status == "resolved":
                    inc["alerts_firing"] = max(0, inc["alerts_firing"] - 1)
                found.update(status=p.status, ends_at=p.ends_at)
        elif isinstance(p, payloads.AlertReceivedLate):
            for a in self.alerts:
                if (a["fingerprint"], a["starts_at"]) == (p.fingerprint, p.starts_at):
                    a["received_seq"] = ev.seq
        elif isinstance(p, payloads.IncidentResolved):
            inc["status"], inc["resolved_at"] = IncidentStatus.RESOLVED, ev.at
        elif isinstance(p, payloads.IncidentEscalated) and inc["status"] != IncidentStatus.RESOLVED:
            inc["status"] = IncidentStatus.ESCALATED
        elif isinstance(p, payloads.DiagnosisProduced):
            inc["diagnosis"] = ev.data

    def _project_action(self, ev: StoredEvent, p: payloads.EventPayload) -> None:
        step = action_transition(ev)
        if step is None:
            return
        if isinstance(p, payloads.ActionProposed):
            self.actions[p.action_id] = {"decision_reason": None, "result": None,
                                         "started_ts": None, "finished_ts": None,
                                         "decided_by": None, **new_action_row(ev, p, _ts(ev.at))}
            return
        row = self.actions.get(step.action_id)
        if row is None:
            return
        row.update(action_changes(step, _ts(ev.at), lambda: dict(row["result"] or {})))
        if step.attempt:
            s = self.stats.setdefault((row["alertname"], row["kind"]), {
                "alertname": row["alertname"], "kind": row["kind"], "attempts": 0,
                "successes": 0, "recoveries": 0, "recovery_seconds_total": 0.0})
            s["attempts"] += 1
            s["successes"] += 1 if step.success else 0

    # --- reads --------------------------------------------------------------------------------
    async def list_events(self, *, incident_id: str | None = None,
                          types: list[str] | None = None, since_seq: int = 0,
                          limit: int = 100) -> list[StoredEvent]:
        return [e for e in self.events
                if e.seq > since_seq and (incident_id is None or e.incident_id == incident_id)
                and (not types or e.type in types)][:limit]

    async def last_event(self, types: list[str] | None = None) -> StoredEvent | None:
        found = [e for e in self.events if not types or e.type in types]
        return found[-1] if found else None

    async def verify(self) -> VerifyResult:
        return VerifyResult(len(self.events), verify_chain(self.events, GENESIS_HASH, 1))

    async def get_incident(self, incident_id: str) -> dict[str, Any] | None:
        inc = self.incidents.get(incident_id)
        return dict(inc) if inc else None

    async def incident_snapshot(self, incident_id: str) -> IncidentSnapshot | None:
        incident = await self.get_incident(incident_id)
        if incident is None:
            return None
        return IncidentSnapshot(incident, await self.incident_alerts(incident_id),
                                await self.list_events(incident_id=incident_id, limit=100_000),
                                await self.control_state())

    async def incident_alerts(self, incident_id: str, *, offset: int = 0,
                              limit: int | None = None) -> list[dict[str, Any]]:
        rows = [dict(a) for a in self.alerts if a["incident_id"] == incident_id][offset:]
        return rows if limit is None else rows[:limit]

    async def count_events(self, incident_id: str) -> int:
        return sum(1 for e in self.events if e.incident_id == incident_id)

    async def list_incidents(self, *, status: str | None = None, limit: int = 50,
                             cursor: int | None = None) -> IncidentPage:
        rows = sorted((dict(i) for i in self.incidents.values()
                       if (status is None or i["status"] == status)
                       and (cursor is None or i["opened_seq"] < cursor)),
                      key=lambda i: -int(i["opened_seq"]))
        nxt = rows[limit - 1]["opened_seq"] if len(rows) > limit else None
        return IncidentPage(rows[:limit], nxt)

    async def incident_counts(self) -> dict[str, int]:
        counts = {s.value: 0 for s in IncidentStatus}
        for inc in self.incidents.values():
            counts[inc["status"]] += 1
        return counts

    async def control_state(self) -> dict[str, str]:
        return dict(self.control)

    async def pending_incidents(self, limit: int = 1000,
                                unleased_at: float | None = None) -> list[str]:
        return [i for i, inc in sorted(self.incidents.items(), key=lambda x: x[1]["opened_seq"])
                if inc["last_seq"] > self.processed.get(i, 0)
                and (unleased_at is None or i not in self.leases
                     or self.leases[i]["expires_at"] < unleased_at)][:limit]

    async def list_actions(self, *, status: str | None = None, incident_id: str | None = None,
                           limit: int = 100) -> list[dict[str, Any]]:
        rows = [dict(a) for a in self.actions.values()
                if (status is None or a["status"] == status)
                and (incident_id is None or a["incident_id"] == incident_id)]
        return sorted(rows, key=lambda a: -float(a["updated_ts"]))[:limit]

    async def get_action(self, action_id: str) -> dict[str, Any] | None:
        row = self.actions.get(action_id)
        return dict(row) if row else None

    async def gate_history(self, now: float, window_s: float) -> GateHistory:
        since = history_since(now, window_s)
        return gate_history_of(
            (a for a in self.actions.values() if a["updated_ts"] >= since), now, window_s,
            breaker_open={t for t, b in self.breakers.items() if b["state"] == "open"},
            track_record={k: (int(s["attempts"]), int(s["successes"]))
                          for k, s in self.stats.items()})

    async def list_breakers(self) -> list[dict[str, Any]]:
        return sorted((dict(b) for b in self.breakers.values()),
                      key=lambda b: str(b["changed_at"]), reverse=True)

    async def action_stats(self) -> list[dict[str, Any]]:
        return [dict(s) for _, s in sorted(self.stats.items())]

    def statuses(self) -> dict[str, str]:
        """action id -> status, for assertions."""
        return {a: str(r["status"]) for a, r in self.actions.items()}

    def types(self, incident_id: str | None = None) -> list[str]:
        """The event types appended so far (for one incident), in order."""
        return [str(e.type) for e in self.events
                if incident_id is None or e.incident_id == incident_id]

