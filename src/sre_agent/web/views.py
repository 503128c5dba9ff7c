"""Shape store rows and events into what the templates and the report show. Pure functions.

Every state gets a text label and an icon besides its colour ("tone"), so colour is never the
only signal. Alert text is untrusted: it passes through here as plain strings and the templates
escape it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

MAX_TEXT = 300
TARGET_LABELS = ("container", "container_name", "name", "service", "instance", "job")


@dataclass(frozen=True)
class Badge:
    tone: str  # ok | warn | bad | info | off: a CSS class, never the only signal
    icon: str
    label: str


def _badge(table: Mapping[str, tuple[str, str, str]], key: str | None) -> Badge:
    tone, icon, label = table.get(key or "", ("off", "•", (key or "unknown").replace("_", " ")))
    return Badge(tone, icon, label)


ACTION_STATUS = {
    "proposed": ("info", "•", "proposed"),
    "pending_approval": ("warn", "◷", "pending approval"),
    "approved": ("info", "✓", "approved"),
    "rejected": ("off", "✕", "rejected"),
    "expired": ("off", "◷", "expired"),
    "blocked": ("bad", "⊘", "blocked"),
    "dry_run": ("info", "◌", "dry run"),
    "running": ("info", "▶", "running"),
    "succeeded": ("ok", "✓", "executed"),
    "failed": ("bad", "✕", "failed"),
    "verified": ("ok", "✔", "verified"),
    "verification_failed": ("bad", "✕", "verification failed"),
}
INCIDENT_STATUS = {
    "open": ("warn", "●", "open"),
    "escalated": ("bad", "▲", "escalated"),
    "resolved": ("ok", "✓", "resolved"),
}
SEVERITY = {
    "critical": ("bad", "‼", "critical"), "error": ("bad", "‼", "error"),
    "page": ("bad", "‼", "page"), "warning": ("warn", "!", "warning"),
    "info": ("info", "i", "info"), "none": ("off", "○", "none"),
}
COMPONENT_STATUS = {
    "ok": ("ok", "✓", "ok"), "configured": ("ok", "✓", "configured"),
    "healthy": ("ok", "✓", "healthy"), "read_only": ("bad", "✕", "read only"),
    "unavailable": ("bad", "✕", "unavailable"), "disabled": ("off", "○", "disabled"),
    "breaker_open": ("bad", "⊘", "breaker open"), "degraded": ("warn", "!", "degraded"),
}
BREAKER_STATE = {"open": ("bad", "⊘", "open"), "closed": ("ok", "✓", "closed")}
MODES = {
    "observe": ("Observe", "analyse only, never act"),
    "dry_run": ("Dry run", "record what would run, run nothing"),
    "approval": ("Approval", "every action waits for an operator"),
    "autonomous": ("Autonomous", "the safety gate decides; approval still where policy says"),
}


# --- time ---------------------------------------------------------------------------------------
def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def fmt_time(value: str | None) -> str:
    """``2026-11-21 20:43:37 UTC``, or ``—`` for a missing or unreadable time."""
    parsed = parse_time(value)
    if parsed is None or parsed.year < 1970:
        return "—"
    return parsed.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = max(0.0, float(seconds))
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def seconds_between(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    if a is None or b is None:
        return None
    return (b - a).total_seconds()


def clip(value: object, limit: int = MAX_TEXT) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_link(url: str | None) -> str | None:
    """Only http(s) URLs become links: alert text may carry ``javascript:`` and the like."""
    if not url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    return url if parts.scheme in ("http", "https") and parts.netloc else None


# --- status ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ComponentRow:
    name: str
    badge: Badge
    detail: str


def llm_badge(llm: Mapping[str, Any]) -> tuple[Badge, str]:
    if not llm.get("configured"):
        return _badge(COMPONENT_STATUS, "disabled"), "runbook rules only"
    if llm.get("breaker_open"):
        remaining = fmt_duration(llm.get("breaker_cooldown_remaining_s"))
        return (_badge(COMPONENT_STATUS, "breaker_open"),
                f"falling back to rules; retry in {remaining}")
    failures = int(llm.get("consecutive_failures") or 0)
    calls = f"{llm.get('calls_last_minute', 0)}/{llm.get('calls_per_minute_limit', '?')} calls/min"
    if failures:
        return _badge(COMPONENT_STATUS, "degraded"), f"{failures} recent failure(s); {calls}"
    return _badge(COMPONENT_STATUS, "healthy"), calls


def component_rows(status: Mapping[str, Any]) -> list[ComponentRow]:
    """Store, LLM, Prometheus, Docker and Alertmanager, from the ``/status`` JSON."""
    store = status.get("store") or {}
    rows = [ComponentRow("Store", _badge(COMPONENT_STATUS, store.get("status")),
                         clip(store.get("detail") or "event log and projections"))]
    components = status.get("components") or {}
    llm_component = components.get("llm") or {}
    badge, detail = llm_badge(status.get("llm") or {})
    model = llm_component.get("detail") if llm_component.get("status") != "disabled" else ""
    rows.append(ComponentRow("LLM", badge, clip(" · ".join(p for p in (model, detail) if p))))
    for key, name in (("prometheus", "Prometheus"), ("docker", "Docker"),
                      ("alertmanager", "Alertmanager")):
        comp = components.get(key) or {}
        rows.append(ComponentRow(name, _badge(COMPONENT_STATUS, comp.get("status")),
                                 clip(comp.get("detail") or "")))
    return rows


# --- incidents, actions --------------------------------------------------------------------------
@dataclass(frozen=True)
class IncidentRow:
    id: str
    title: str
    severity: Badge
    status: Badge
    target: str
    opened_at: str
    opened: str
    alerts: str


def incident_target(alerts: Iterable[Mapping[str, Any]],
                    actions: Iterable[Mapping[str, Any]] = ()) -> str:
    """What the incident is about: action targets first, else the alerts' telling labels."""
    names = sorted({str(a["target"]) for a in actions if a.get("target")})
    if names:
        return clip(", ".join(names), 120)
    for label in TARGET_LABELS:
        found = sorted({str(a.get("labels", {}).get(label)) for a in alerts
                        if a.get("labels", {}).get(label)})
        if found:
            return clip(", ".join(found), 120)
    return "—"


def incident_row(incident: Mapping[str, Any], alerts: Iterable[Mapping[str, Any]] = (),
                 actions: Iterable[Mapping[str, Any]] = ()) -> IncidentRow:
    return IncidentRow(
        id=str(incident["id"]), title=clip(incident.get("title")),
        severity=_badge(SEVERITY, str(incident.get("severity", "none")).lower()),
        status=_badge(INCIDENT_STATUS, incident.get("status")),
        target=incident_target(alerts, actions), opened_at=str(incident.get("opened_at", "")),
        opened=fmt_time(incident.get("opened_at")),
        alerts=f"{incident.get('alerts_firing', 0)} firing / {incident.get('alerts_total', 0)}")


@dataclass(frozen=True)
class ActionRow:
    id: str
    incident_id: str
    kind: str
    target: str
    alertname: str
    reason: str
    status: Badge
    pending: bool
    decision: str
    decided_by: str
    outcome: str
    verification: str
    updated_at: str
    updated: str
    confidence: str


def _outcome(result: Mapping[str, Any] | None) -> str:
    if not result or "ok" not in result:
        return "—"
    if result.get("ok"):
        return "ok (reconciled after restart)" if result.get("reconciled") else "ok"
    return clip(f"failed: {result.get('error') or 'unknown error'}", 200)


def _verification(result: Mapping[str, Any] | None, status: str) -> str:
    check = (result or {}).get("verification")
    if isinstance(check, Mapping) and "ok" in check:
        return "passed" if check.get("ok") else clip(f"failed: {check.get('error') or '?'}", 200)
    return "checking…" if status == "succeeded" else "—"


def action_row(action: Mapping[str, Any]) -> ActionRow:
    status = str(action.get("status", ""))
    proposal = action.get("proposal") or {}
    confidence = proposal.get("confidence")
    return ActionRow(
        id=str(action["id"]), incident_id=str(action.get("incident_id", "")),
        kind=str(action.get("kind", "")).replace("_", " "),
        target=clip(action.get("target") or "—", 120), alertname=clip(action.get("alertname"), 120),
        reason=clip(action.get("reason")), status=_badge(ACTION_STATUS, status),
        pending=status == "pending_approval", decision=clip(action.get("decision_reason") or "—"),
        decided_by=clip(action.get("decided_by") or "—", 80),
        outcome=_outcome(action.get("result")),
        verification=_verification(action.get("result"), status),
        updated_at=str(action.get("updated_at", "")), updated=fmt_time(action.get("updated_at")),
        confidence=f"{float(confidence):.2f}" if isinstance(confidence, int | float) else "—")


@dataclass(frozen=True)
class EffectivenessRow:
    alertname: str
    kind: str
    attempts: int
    successes: int
    success_rate: str
    recoveries: int
    mean_recovery: str


def effectiveness_rows(stats: Iterable[Mapping[str, Any]]) -> list[EffectivenessRow]:
    rows = []
    for s in stats:
        attempts, successes = int(s.get("attempts", 0)), int(s.get("successes", 0))
        recoveries = int(s.get("recoveries", 0))
        total = float(s.get("recovery_seconds_total", 0.0))
        rows.append(EffectivenessRow(
            alertname=clip(s.get("alertname"), 120), kind=str(s.get("kind", "")).replace("_", " "),
            attempts=attempts, successes=successes,
            success_rate=f"{100 * successes / attempts:.0f}%" if attempts else "—",
            recoveries=recoveries,
            mean_recovery=fmt_duration(total / recoveries) if recoveries else "—"))
    return sorted(rows, key=lambda r: (r.alertname, r.kind))


@dataclass(frozen=True)
class BreakerRow:
    target: str
    state: Badge
    open: bool
    reason: str
    changed: str


def breaker_rows(breakers: Iterable[Mapping[str, Any]]) -> list[BreakerRow]:
    rows = [BreakerRow(target=str(b["target"]), state=_badge(BREAKER_STATE, b.get("state")),
                       open=b.get("state") == "open", reason=clip(b.get("reason")),
                       changed=fmt_time(b.get("changed_at"))) for b in breakers]
    return sorted(rows, key=lambda r: (not r.open, r.target))


def audit_badge(verify: Mapping[str, Any] | None) -> tuple[Badge, str]:
    if verify is None:
        return Badge("off", "?", "unknown"), "the store could not be read"
    checked = int(verify.get("checked", 0))
    if verify.get("ok"):
        return Badge("ok", "✓", "intact"), f"{checked} events checked, hash chain unbroken"
    return (Badge("bad", "✕", f"broken at seq {verify.get('first_bad_seq')}"),
            clip(verify.get("reason") or "the hash chain does not verify"))


def control_badge(paused: bool) -> Badge:
    if paused:
        return Badge("bad", "‖", "paused: no action runs")
    return Badge("ok", "▶", "active")


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
        status=_badge(status_table, a.get("status")), starts=fmt_time(a.get("starts_at")),
        ends=fmt_time(a.get("ends_at")),
        labels=[(clip(k, 80), clip(v, 200)) for k, v in sorted((a.get("labels") or {}).items())],
        annotations=[(clip(k, 80), clip(v, 500))
                     for k, v in sorted((a.get("annotations") or {}).items())],
        link=safe_link(a.get("generator_url"))) for a in alerts]


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
