"""Shape one incident's events, diagnosis and alerts for the incident page and the report.
Pure functions; alert text stays plain strings that the templates escape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sre_agent.domain.events import EventType, StoredEvent, payloads
from sre_agent.web.views import (
    TARGET_LABELS,
    Badge,
    badge_for,
    clip,
    fmt_duration,
    fmt_time,
    safe_link,
)

# --- incident detail: timeline, diagnosis, alerts ------------------------------------------------
EventLike = StoredEvent | Mapping[str, Any]


def as_events(events: Iterable[EventLike]) -> list[StoredEvent]:
    """Typed events, from stored events or their JSON form (``StoredEvent.as_dict``)."""
    return [e if isinstance(e, StoredEvent) else StoredEvent.from_dict(dict(e)) for e in events]


def action_names(events: Iterable[StoredEvent]) -> dict[str, str]:
    """action id → "restart container on web", from the ActionProposed events."""
    names: dict[str, str] = {}
    for ev in events:
        p = ev.payload
        if isinstance(p, payloads.ActionProposed) and p.action_id:
            kind = (p.kind or "action").replace("_", " ")
            names[p.action_id] = f"{kind} on {p.target}" if p.target else kind
    return names


def approval_deadlines(events: Iterable[StoredEvent]) -> dict[str, float]:
    """action id → when its approval request expires (unix seconds), from
    ActionAwaitingApproval (the last request of each action counts)."""
    out: dict[str, float] = {}
    for ev in events:
        p = ev.payload
        if isinstance(p, payloads.ActionAwaitingApproval) and p.expires_ts is not None:
            out[p.action_id] = float(p.expires_ts)
    return out


def _alert_name(p: payloads.AlertReceived | payloads.AlertResolved) -> str:
    name = str(p.labels.get("alertname") or "alert")
    where = next((str(p.labels[k]) for k in TARGET_LABELS if p.labels.get(k)), "")
    return f"{name} ({where})" if where else name


def _with(text: str, reason: str) -> str:
    return text + (f": {reason}" if reason else "")


NOTE_CHARS = 4000
_DECISION_VERB = {EventType.ACTION_BLOCKED: "Blocked", EventType.ACTION_DRY_RUN: "Dry run of",
                  EventType.ACTION_EXPIRED: "Expired"}


def describe_event(ev: StoredEvent, names: Mapping[str, str]) -> str:
    """One line of plain text for a timeline row (untrusted parts included, unescaped)."""
    p = ev.payload
    aid = str(ev.data.get("action_id", ""))
    action = names.get(aid, aid or "action")
    reason = clip(ev.data.get("reason"), 200)
    text: str
    match p:
        case payloads.IncidentOpened():
            text = f"Incident opened: {clip(p.title)} (severity {ev.data.get('severity', '?')})"
        case payloads.AlertReceived():
            summary = p.annotations.get("summary")
            text = f"{_alert_name(p)} firing" + (f": {clip(summary, 200)}" if summary else "")
        case payloads.AlertResolved():
            text = f"{_alert_name(p)} resolved"
        case payloads.EvidenceCollected():
            errors = sum(1 for e in p.evidence if e.get("status") == "error")
            targets = ", ".join(str(x.get("name")) for x in p.targets) or "none"
            text = (f"Evidence collected: {len(p.evidence)} item(s), {errors} error(s); "
                    f"targets: {clip(targets, 120)}")
        case payloads.DiagnosisProduced():
            conf = p.confidence
            conf_text = f", confidence {float(conf):.2f}" if conf is not None else ""
            text = f"Diagnosis ({p.engine}{conf_text}): {clip(p.summary, 200)}"
        case payloads.ActionProposed():
            text = _with(f"Proposed {action}", reason)
        case payloads.ActionAwaitingApproval():
            text = _with(f"{action} awaits approval", reason)
        case payloads.ActionApproved() | payloads.ActionRejected():
            verb = "Approved" if isinstance(p, payloads.ActionApproved) else "Rejected"
            text = _with(f"{verb} {action} ({ev.actor or '?'})", reason)
        case payloads.ActionBlocked() | payloads.ActionDryRun() | payloads.ActionExpired():
            text = _with(f"{_DECISION_VERB[p.TYPE]} {action}", reason)
        case payloads.ActionStarted():
            text = f"Started {action}"
        case payloads.ActionSucceeded():
            text = f"{action} succeeded" + (" (reconciled)" if p.result.reconciled else "")
        case payloads.ActionFailed():
            text = f"{action} failed: {clip(p.result.error or 'unknown error', 200)}"
        case payloads.VerificationPassed():
            text = f"Verified {action}: the target recovered"
        case payloads.VerificationFailed():
            text = f"Verification of {action} failed: {clip(p.result.error or '?', 200)}"
        case payloads.VerificationInconclusive():
            text = (f"Verification of {action} inconclusive: "
                    f"{clip(p.result.error or 'could not tell', 200)}")
        case payloads.IncidentEscalated():
            text = f"Escalated: {reason or 'needs a human'}"
        case payloads.IncidentResolved() if p.manual:
            text = _with(f"Resolved by {ev.actor or '?'}", reason)
        case payloads.IncidentResolved():
            text = f"Resolved: {reason or 'all alerts resolved'}"
        case payloads.IncidentAcknowledged():
            text = _with(f"Acknowledged by {ev.actor or '?'}", reason)
        case payloads.IncidentAssigned():
            text = _with(f"Assigned to {clip(p.assignee, 80)} by {ev.actor or '?'}"
                         if p.assignee else f"Unassigned by {ev.actor or '?'}", reason)
        case payloads.NoteAdded():
            return clip(f"Note from {ev.actor or '?'}: {p.text}", NOTE_CHARS)
        case payloads.AlertSilenced():
            text = _with(f"Alert silenced in Alertmanager by {ev.actor or '?'} for "
                         f"{fmt_duration(p.duration_s)}, until {fmt_time(p.ends_at or None)} "
                         f"(silence {clip(p.silence_id, 64)})", reason)
        case payloads.ModeChanged():
            text = _with(f"Mode set to {ev.data.get('mode')}", reason)
        case payloads.Paused() | payloads.Resumed():
            text = _with(str(ev.type), reason)
        case payloads.BreakerTripped() | payloads.BreakerReset():
            verb = "tripped" if isinstance(p, payloads.BreakerTripped) else "reset"
            text = _with(f"Circuit breaker for {ev.data.get('target')} {verb}", reason)
        case payloads.NotificationDelivered():
            text = f"{p.destination.capitalize()}: {_NOTIFY_VERB.get(p.op, p.op)} {p.key}" + (
                f" (attempt {p.attempt})" if p.attempt > 1 else "")
        case payloads.NotificationAttempted():
            text = (f"{p.destination.capitalize()}: attempt {p.attempt} to {p.op} {p.key} "
                    f"failed ({clip(p.error, 150)}); retry in {p.retry_in_s:g}s")
        case payloads.NotificationFailed():
            text = (f"{p.destination.capitalize()}: gave up on {p.op} {p.key} after "
                    f"{p.attempt} attempt(s): {clip(p.error, 150)}")
        case _:
            text = str(ev.type)
    return clip(text, 400)


_NOTIFY_VERB = {"post": "posted", "update": "updated", "trigger": "paged (trigger)",
                "resolve": "resolved the page for"}


E = EventType
EVENT_TONE: dict[str, str] = {
    E.INCIDENT_OPENED: "warn", E.ALERT_RECEIVED: "warn", E.ALERT_RESOLVED: "ok",
    E.INCIDENT_RESOLVED: "ok", E.INCIDENT_ESCALATED: "bad", E.DIAGNOSIS_PRODUCED: "info",
    E.ACTION_AWAITING_APPROVAL: "warn", E.ACTION_APPROVED: "ok", E.ACTION_REJECTED: "off",
    E.ACTION_BLOCKED: "bad", E.ACTION_FAILED: "bad", E.ACTION_SUCCEEDED: "ok",
    E.VERIFICATION_PASSED: "ok", E.VERIFICATION_FAILED: "bad",
    E.VERIFICATION_INCONCLUSIVE: "warn", E.BREAKER_TRIPPED: "bad",
    E.INCIDENT_ACKNOWLEDGED: "ok", E.INCIDENT_ASSIGNED: "info", E.NOTE_ADDED: "info",
    E.ALERT_SILENCED: "off", E.NOTIFICATION_DELIVERED: "info",
    E.NOTIFICATION_ATTEMPTED: "warn", E.NOTIFICATION_FAILED: "bad",
}


@dataclass(frozen=True)
class TimelineRow:
    seq: int
    at: str
    time: str
    type: str
    actor: str
    tone: str
    text: str
    hash: str
    folded: int = 0  # a summary row standing for this many AlertReceived events


# A run of more than RUN_LIMIT AlertReceived events shows its first RUN_SHOWN, then one row.
RUN_LIMIT = 8
RUN_SHOWN = 5


def _row(ev: StoredEvent, names: Mapping[str, str]) -> TimelineRow:
    return TimelineRow(seq=ev.seq, at=ev.at, time=fmt_time(ev.at or None), type=str(ev.type),
                       actor=clip(ev.actor, 80), tone=EVENT_TONE.get(ev.type, "info"),
                       text=describe_event(ev, names), hash=ev.hash)


def _folded(run: list[StoredEvent]) -> TimelineRow:
    last = run[-1]
    return TimelineRow(seq=run[0].seq, at=last.at, time=fmt_time(last.at or None),
                       type=str(last.type), actor=clip(last.actor, 80), tone="warn",
                       text=f"… {len(run):,} more alerts received (#{run[0].seq}-#{last.seq}; "
                            "every alert is listed under Alerts)",
                       hash=last.hash, folded=len(run))


def timeline(events: Iterable[EventLike]) -> list[TimelineRow]:
    """One row per event, except that long runs of AlertReceived fold into one row."""
    items = as_events(events)
    names = action_names(items)
    rows: list[TimelineRow] = []
    run: list[StoredEvent] = []

    def flush() -> None:
        if len(run) > RUN_LIMIT:
            rows.extend(_row(ev, names) for ev in run[:RUN_SHOWN])
            rows.append(_folded(run[RUN_SHOWN:]))
        else:
            rows.extend(_row(ev, names) for ev in run)
        run.clear()

    for ev in items:
        if ev.type == EventType.ALERT_RECEIVED:
            run.append(ev)
            continue
        flush()
        rows.append(_row(ev, names))
    flush()
    return rows


@dataclass(frozen=True)
class DiagnosisView:
    engine: str
    model: str
    confidence: str
    category: str
    severity: str
    summary: str
    probable_cause: str
    runbook: str
    fallback_reason: str
    evidence: list[str]
    proposed: list[str]
    dropped: list[str]
    cost: str
    decided_by: str = ""  # who chose the actions, and why (the combined engine's record)
    explanation: str = ""  # the LLM's explanation of a diagnosis decided before it answered


def _explanation(d: Mapping[str, Any]) -> str:
    if d.get("explanation_pending"):
        return "The actions were proposed at once (no LLM answer could change them); " \
               "the LLM's explanation is on its way."
    if d.get("explanation_fallback_reason"):
        return ("The actions were proposed at once; the LLM gave no explanation ("
                + clip(d["explanation_fallback_reason"], 200) + ").")
    if d.get("explained_by"):
        return "The actions were proposed at once; the summary is the LLM's, which came after."
    return ""


def diagnosis_view(d: Mapping[str, Any] | None) -> DiagnosisView | None:
    if not d:
        return None
    conf = d.get("confidence")
    proposed = [f"{str(a.get('kind', '?')).replace('_', ' ')}"
                + (f" on {a['target']}" if a.get("target") else "")
                + (f": {clip(a.get('reason'), 200)}" if a.get("reason") else "")
                for a in d.get("proposed_actions") or []]
    dropped = [clip(f"{a.get('kind', '?')}: {a.get('reason', '')}", 200)
               for a in d.get("dropped_actions") or [] if isinstance(a, Mapping)]
    cost_parts = []
    if d.get("tokens"):
        cost_parts.append(f"{d['tokens']} tokens")
    if d.get("latency_ms"):
        cost_parts.append(f"{float(d['latency_ms']):.0f} ms")
    return DiagnosisView(
        engine=str(d.get("engine", "?")), model=clip(d.get("model") or "—", 80),
        confidence=f"{float(conf):.2f}" if isinstance(conf, int | float) else "—",
        category=str(d.get("category", "unknown")), severity=str(d.get("severity", "?")),
        summary=clip(d.get("summary"), 1000), probable_cause=clip(d.get("probable_cause"), 1000),
        runbook=clip(d.get("runbook") or "—", 120),
        fallback_reason=clip(d.get("fallback_reason") or "", 500),
        evidence=[clip(e, 500) for e in (d.get("evidence") or [])][:50],
        proposed=proposed, dropped=dropped, cost=", ".join(cost_parts) or "—",
        decided_by=clip(d.get("action_reason") or "", 500), explanation=_explanation(d))


@dataclass(frozen=True)
class AlertRow:
    alertname: str
    status: Badge
    starts: str
    ends: str
    labels: list[tuple[str, str]] = field(default_factory=list)
    annotations: list[tuple[str, str]] = field(default_factory=list)
    link: str | None = None


def alert_rows(alerts: Iterable[Mapping[str, Any]]) -> list[AlertRow]:
    status_table = {"firing": ("warn", "●", "firing"), "resolved": ("ok", "✓", "resolved")}
    return [AlertRow(
        alertname=clip(a.get("alertname") or (a.get("labels") or {}).get("alertname"), 120),
        status=badge_for(status_table, a.get("status")), starts=fmt_time(a.get("starts_at")),
        ends=fmt_time(a.get("ends_at")),
        labels=[(clip(k, 80), clip(v, 200)) for k, v in sorted((a.get("labels") or {}).items())],
        annotations=[(clip(k, 80), clip(v, 500))
                     for k, v in sorted((a.get("annotations") or {}).items())],
        link=safe_link(a.get("generator_url"))) for a in alerts]


