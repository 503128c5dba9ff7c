"""Shape one incident's events, diagnosis and alerts for the incident page and the report.
Pure functions; alert text stays plain strings that the templates escape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sre_agent.web.views import (
    TARGET_LABELS,
    Badge,
    badge_for,
    clip,
    fmt_time,
    safe_link,
)


# --- incident detail: timeline, diagnosis, alerts ------------------------------------------------
def action_names(events: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """action id → "restart container on web", from the ActionProposed events."""
    names: dict[str, str] = {}
    for ev in events:
        data = ev.get("data") or {}
        if ev.get("type") == "ActionProposed" and "action_id" in data:
            kind = str(data.get("kind", "action")).replace("_", " ")
            target = data.get("target")
            names[str(data["action_id"])] = f"{kind} on {target}" if target else kind
    return names


def _alert_name(data: Mapping[str, Any]) -> str:
    labels = data.get("labels") or {}
    name = str(labels.get("alertname") or "alert")
    where = next((str(labels[k]) for k in TARGET_LABELS if labels.get(k)), "")
    return f"{name} ({where})" if where else name


def describe_event(ev: Mapping[str, Any], names: Mapping[str, str]) -> str:
    """One line of plain text for a timeline row (untrusted parts included, unescaped)."""
    t = str(ev.get("type", ""))
    d: Mapping[str, Any] = ev.get("data") or {}
    action = names.get(str(d.get("action_id", "")), str(d.get("action_id", "action")))
    reason = clip(d.get("reason"), 200)
    raw_result = d.get("result")
    result: Mapping[str, Any] = raw_result if isinstance(raw_result, Mapping) else {}
    text: str
    if t == "IncidentOpened":
        text = f"Incident opened: {clip(d.get('title'))} (severity {d.get('severity', '?')})"
    elif t == "AlertReceived":
        summary = (d.get("annotations") or {}).get("summary")
        text = f"{_alert_name(d)} firing" + (f": {clip(summary, 200)}" if summary else "")
    elif t == "AlertResolved":
        text = f"{_alert_name(d)} resolved"
    elif t == "EvidenceCollected":
        evidence = d.get("evidence") or []
        errors = sum(1 for e in evidence if e.get("status") == "error")
        targets = ", ".join(str(x.get("name")) for x in d.get("targets") or []) or "none"
        text = (f"Evidence collected: {len(evidence)} item(s), {errors} error(s); "
                f"targets: {clip(targets, 120)}")
    elif t == "DiagnosisProduced":
        conf = d.get("confidence")
        conf_text = f", confidence {float(conf):.2f}" if isinstance(conf, int | float) else ""
        text = f"Diagnosis ({d.get('engine', '?')}{conf_text}): {clip(d.get('summary'), 200)}"
    elif t == "ActionProposed":
        text = f"Proposed {action}" + (f": {reason}" if reason else "")
    elif t == "ActionAwaitingApproval":
        text = f"{action} awaits approval" + (f": {reason}" if reason else "")
    elif t in ("ActionApproved", "ActionRejected"):
        verb = "Approved" if t == "ActionApproved" else "Rejected"
        text = f"{verb} {action} ({ev.get('actor', '?')})" + (f": {reason}" if reason else "")
    elif t in ("ActionBlocked", "ActionDryRun", "ActionExpired"):
        verb = {"ActionBlocked": "Blocked", "ActionDryRun": "Dry run of",
                "ActionExpired": "Expired"}[t]
        text = f"{verb} {action}" + (f": {reason}" if reason else "")
    elif t == "ActionStarted":
        text = f"Started {action}"
    elif t == "ActionSucceeded":
        text = f"{action} succeeded" + (" (reconciled)" if result.get("reconciled") else "")
    elif t == "ActionFailed":
        text = f"{action} failed: {clip(result.get('error') or 'unknown error', 200)}"
    elif t == "VerificationPassed":
        text = f"Verified {action}: the target recovered"
    elif t == "VerificationFailed":
        text = f"Verification of {action} failed: {clip(result.get('error') or '?', 200)}"
    elif t == "IncidentEscalated":
        text = f"Escalated: {reason or 'needs a human'}"
    elif t == "IncidentResolved":
        text = f"Resolved: {reason or 'all alerts resolved'}"
    elif t == "ModeChanged":
        text = f"Mode set to {d.get('mode')}" + (f": {reason}" if reason else "")
    elif t in ("Paused", "Resumed"):
        text = t + (f": {reason}" if reason else "")
    elif t in ("BreakerTripped", "BreakerReset"):
        verb = "tripped" if t == "BreakerTripped" else "reset"
        text = f"Circuit breaker for {d.get('target')} {verb}" + (f": {reason}" if reason else "")
    else:
        text = t
    return clip(text, 400)


EVENT_TONE = {
    "IncidentOpened": "warn", "AlertReceived": "warn", "AlertResolved": "ok",
    "IncidentResolved": "ok", "IncidentEscalated": "bad", "DiagnosisProduced": "info",
    "ActionAwaitingApproval": "warn", "ActionApproved": "ok", "ActionRejected": "off",
    "ActionBlocked": "bad", "ActionFailed": "bad", "ActionSucceeded": "ok",
    "VerificationPassed": "ok", "VerificationFailed": "bad", "BreakerTripped": "bad",
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


def timeline(events: Iterable[Mapping[str, Any]]) -> list[TimelineRow]:
    items = list(events)
    names = action_names(items)
    return [TimelineRow(seq=int(ev["seq"]), at=str(ev.get("at", "")), time=fmt_time(ev.get("at")),
                        type=str(ev.get("type", "")), actor=clip(ev.get("actor"), 80),
                        tone=EVENT_TONE.get(str(ev.get("type")), "info"),
                        text=describe_event(ev, names), hash=str(ev.get("hash", "")))
            for ev in items]


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
        proposed=proposed, dropped=dropped, cost=", ".join(cost_parts) or "—")


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


