"""Shape store rows and events into what the templates and the report show. Pure functions.

Every state gets a text label and an icon besides its colour ("tone"), so colour is never the
only signal. Alert text is untrusted: it passes through here as plain strings and the templates
escape it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
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


def badge_for(table: Mapping[str, tuple[str, str, str]], key: str | None) -> Badge:
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
    "verification_inconclusive": ("warn", "?", "verification inconclusive"),
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


# Characters that reorder or hide text (bidi overrides and isolates, zero-width marks) and C0/C1
# controls other than whitespace: alert text could use them to make a page lie about what it
# shows ("\u202erestart" reads backwards). They are shown as visible code points instead.
_HIDDEN = re.compile("[\u0000-\u0008\u000e-\u001f\u007f-\u009f\u061c\u200b-\u200f"
                     "\u202a-\u202e\u2060-\u2069\ufeff]")


def reveal_controls(text: str) -> str:
    """Untrusted text for display: invisible and reordering characters become ⟨U+XXXX⟩."""
    return _HIDDEN.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text)


def clip(value: object, limit: int = MAX_TEXT) -> str:
    text = reveal_controls("" if value is None else str(value))
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
    """The state computed by ``analysis.chain.llm_state`` (the same as ``/status`` JSON), with
    the model's running totals."""
    state = str(llm.get("state") or ("healthy" if llm.get("configured") else "disabled"))
    detail = str(llm.get("detail") or "")
    if llm.get("configured") and llm.get("calls_total"):
        p50 = llm.get("latency_ms_p50")
        detail += (f"; {llm['calls_total']} calls, {llm.get('tokens_total', 0)} tokens"
                   + (f", p50 {float(p50) / 1000:.1f}s" if p50 is not None else ""))
    return badge_for(COMPONENT_STATUS, state), detail


def component_rows(status: Mapping[str, Any]) -> list[ComponentRow]:
    """Store, LLM, Prometheus, Docker, Alertmanager and the chat and paging destinations,
    from the ``/status`` JSON."""
    store = status.get("store") or {}
    rows = [ComponentRow("Store", badge_for(COMPONENT_STATUS, store.get("status")),
                         clip(store.get("detail") or "event log and projections"))]
    components = status.get("components") or {}
    llm_component = components.get("llm") or {}
    llm = status.get("llm") or {}
    badge, detail = llm_badge(llm)
    model = str(llm.get("model") or "") if llm_component.get("status") != "disabled" else ""
    rows.append(ComponentRow("LLM", badge, clip(" · ".join(p for p in (model, detail) if p))))
    for key, name in (("prometheus", "Prometheus"), ("docker", "Docker"),
                      ("alertmanager", "Alertmanager"), ("slack", "Slack"),
                      ("teams", "Microsoft Teams"), ("pagerduty", "PagerDuty")):
        comp = components.get(key) or {}
        rows.append(ComponentRow(name, badge_for(COMPONENT_STATUS, comp.get("status")),
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
    chat: tuple[tuple[str, str], ...] = ()  # (destination, link to its message), sorted


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
                 actions: Iterable[Mapping[str, Any]] = (),
                 chat: Mapping[str, str] | None = None) -> IncidentRow:
    return IncidentRow(
        id=str(incident["id"]), title=clip(incident.get("title")),
        severity=badge_for(SEVERITY, str(incident.get("severity", "none")).lower()),
        status=badge_for(INCIDENT_STATUS, incident.get("status")),
        target=incident_target(alerts, actions), opened_at=str(incident.get("opened_at", "")),
        opened=fmt_time(incident.get("opened_at")),
        alerts=f"{incident.get('alerts_firing', 0)} firing / {incident.get('alerts_total', 0)}",
        chat=tuple(sorted((chat or {}).items())))


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


def now_iso() -> str:
    return datetime.now(UTC).isoformat()

