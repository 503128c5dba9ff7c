"""A Markdown post-incident report, built from an incident's events alone. Pure.

Alert text is untrusted: every value from the log goes through :func:`md`, which puts it on one
line and escapes what Markdown would read as structure (headings, fences, links, HTML, tables).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sre_agent.web.incident_view import action_names, describe_event
from sre_agent.web.views import clip, fmt_duration, fmt_time, seconds_between

_ESCAPE = re.compile(r"([\\`*_\[\]<>|~&#])")
_LEADING = re.compile(r"^(-|\+|=|\d+[.)])")


def md(value: object, limit: int = 300) -> str:
    """Untrusted text as inert inline Markdown: one line, structure characters escaped."""
    text = " ".join(clip(value, limit).split())
    text = _ESCAPE.sub(r"\\\1", text)
    return "\\" + text if _LEADING.match(text) else text


def code(value: object, limit: int = 80) -> str:
    """A value for an inline code span, where escapes do not work: no backticks, one line."""
    return "".join(clip(value, limit).replace("`", "'").split()) or "-"


@dataclass
class _Action:
    id: str
    name: str
    alertname: str = ""
    reason: str = ""
    decision: str = "proposed"
    decided_by: str = "—"
    outcome: str = "—"
    verification: str = "—"
    started_at: str | None = None


@dataclass
class _Facts:
    incident_id: str = "?"
    title: str = "(untitled)"
    severity: str = "none"
    group_key: str = ""
    opened_at: str | None = None
    resolved_at: str | None = None
    escalations: list[str] = field(default_factory=list)
    alerts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    diagnosis: Mapping[str, Any] | None = None
    actions: dict[str, _Action] = field(default_factory=dict)
    first_started: str | None = None
    first_verified: str | None = None


def _result(data: Mapping[str, Any]) -> Mapping[str, Any]:
    raw = data.get("result")
    return raw if isinstance(raw, Mapping) else {}


def _collect(events: Sequence[Mapping[str, Any]]) -> _Facts:
    facts = _Facts()
    names = action_names(events)
    for ev in events:
        t, d, at = ev.get("type"), ev.get("data") or {}, ev.get("at")
        facts.incident_id = str(ev.get("incident_id") or facts.incident_id)
        action = facts.actions.get(str(d.get("action_id", "")))
        if t == "IncidentOpened":
            facts.title, facts.severity = str(d.get("title", "")), str(d.get("severity", "none"))
            facts.group_key, facts.opened_at = str(d.get("group_key", "")), at
        elif t in ("AlertReceived", "AlertResolved"):
            key = (str(d.get("fingerprint")), str(d.get("starts_at")))
            facts.alerts[key] = dict(d)
        elif t == "IncidentResolved":
            facts.resolved_at = at
        elif t == "IncidentEscalated":
            facts.escalations.append(str(d.get("reason", "")))
        elif t == "DiagnosisProduced":
            facts.diagnosis = d
        elif t == "ActionProposed":
            aid = str(d.get("action_id"))
            facts.actions[aid] = _Action(aid, names.get(aid, aid), str(d.get("alertname", "")),
                                         str(d.get("reason", "")))
        elif action is not None:
            _apply_action(facts, action, str(t), d, ev)
    return facts


def _apply_action(facts: _Facts, action: _Action, t: str, d: Mapping[str, Any],
                  ev: Mapping[str, Any]) -> None:
    reason = str(d.get("reason") or "")
    if t == "ActionAwaitingApproval":
        action.decision = "awaiting approval"
    elif t in ("ActionApproved", "ActionRejected"):
        action.decision = "approved" if t == "ActionApproved" else "rejected"
        action.decided_by = str(ev.get("actor", "?"))
        if reason:
            action.decision += f": {reason}"
    elif t in ("ActionBlocked", "ActionDryRun", "ActionExpired"):
        verb = {"ActionBlocked": "blocked", "ActionDryRun": "dry run",
                "ActionExpired": "expired"}[t]
        action.decision = f"{verb}: {reason}" if reason else verb
        action.decided_by = str(ev.get("actor", "?"))
    elif t == "ActionStarted":
        if action.decision in ("proposed", "awaiting approval"):
            action.decision = f"allowed by the gate: {reason}" if reason else "allowed"
            action.decided_by = str(ev.get("actor", "?"))
        action.started_at = ev.get("at")
        facts.first_started = facts.first_started or ev.get("at")
    elif t in ("ActionSucceeded", "ActionFailed"):
        result = _result(d)
        action.outcome = ("succeeded" if t == "ActionSucceeded"
                          else f"failed: {result.get('error') or 'unknown error'}")
        if result.get("reconciled"):
            action.outcome += " (reconciled after a restart)"
    elif t in ("VerificationPassed", "VerificationFailed"):
        result = _result(d)
        action.verification = ("passed" if t == "VerificationPassed"
                               else f"failed: {result.get('error') or '?'}")
        if t == "VerificationPassed":
            facts.first_verified = facts.first_verified or ev.get("at")


def _summary(f: _Facts) -> str:
    names = sorted({str((a.get("labels") or {}).get("alertname", "?")) for a in f.alerts.values()})
    parts = [f"{md(', '.join(names) or 'An alert')} ({md(f.severity)}) opened this incident at "
             f"{fmt_time(f.opened_at)}."]
    if f.diagnosis:
        d = f.diagnosis
        conf = d.get("confidence")
        conf_text = f", confidence {float(conf):.2f}" if isinstance(conf, int | float) else ""
        summary = md(d.get("summary")).rstrip()
        parts.append(f"The {md(d.get('engine', '?'))} engine diagnosed "
                     f"{md(d.get('category', 'unknown'))}{conf_text}: {summary}"
                     + ("" if summary.endswith((".", "!", "?")) else "."))
    else:
        parts.append("No diagnosis was recorded.")
    if f.actions:
        done = "; ".join(f"{md(a.name)}: {md(a.decision, 120)}, outcome {md(a.outcome, 120)}"
                         + (f", verification {md(a.verification, 120)}"
                            if a.verification != "—" else "")
                         for a in f.actions.values())
        parts.append(f"Actions: {done}.")
    else:
        parts.append("No action was proposed.")
    if f.escalations:
        parts.append(f"Escalated {len(f.escalations)} time(s).")
    if f.resolved_at:
        parts.append(f"All alerts resolved at {fmt_time(f.resolved_at)}, "
                     f"{fmt_duration(seconds_between(f.opened_at, f.resolved_at))} after opening.")
    else:
        parts.append("The incident is not resolved yet.")
    return " ".join(parts)


def build_report(events: Sequence[Mapping[str, Any]], *, generated_at: str) -> str:
    """The report for one incident, from its events in log order."""
    f = _collect(events)
    names = action_names(events)
    status = "resolved" if f.resolved_at else ("escalated" if f.escalations else "open")
    recover = seconds_between(f.opened_at, f.resolved_at)
    recover_text = fmt_duration(recover) if recover is not None else "not recovered yet"
    first_action = fmt_duration(seconds_between(f.opened_at, f.first_started))
    out: list[str] = [
        f"# Post-incident report: {md(f.title)}", "",
        f"- **Incident:** `{code(f.incident_id)}`",
        f"- **Status:** {status}",
        f"- **Severity:** {md(f.severity, 40)}",
        f"- **Opened:** {fmt_time(f.opened_at)}",
        f"- **Resolved:** {fmt_time(f.resolved_at)}",
        f"- **Time to recover:** {recover_text} (incident opened → all alerts resolved)",
        f"- **Time to first action:** {first_action}",
        f"- **Time to verified fix:** "
        f"{fmt_duration(seconds_between(f.opened_at, f.first_verified))}",
        f"- **Group key:** {md(f.group_key, 200)}",
        f"- **Report generated:** {fmt_time(generated_at)}",
        "", "## Summary", "", _summary(f), "",
        "## Timeline", "", "| Time (UTC) | Seq | Event | Actor | Detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for ev in events:
        out.append(f"| {fmt_time(ev.get('at'))} | {ev.get('seq')} | {md(ev.get('type'), 40)} "
                   f"| {md(ev.get('actor'), 80)} | {md(describe_event(ev, names), 400)} |")
    out += ["", "## Diagnosis", ""]
    out += _diagnosis_lines(f.diagnosis)
    out += ["", "## Actions and outcomes", ""]
    if f.actions:
        out += ["| Action | Alert | Decision | Decided by | Outcome | Verification |",
                "| --- | --- | --- | --- | --- | --- |"]
        out += [f"| {md(a.name, 120)} | {md(a.alertname, 120)} | {md(a.decision)} "
                f"| {md(a.decided_by, 80)} | {md(a.outcome)} | {md(a.verification)} |"
                for a in f.actions.values()]
    else:
        out.append("No action was proposed.")
    if f.escalations:
        out += ["", "Escalations:", ""] + [f"- {md(r)}" for r in f.escalations]
    out += ["", "## Alerts", "", "| Alert | Status | Started | Ended | Labels |",
            "| --- | --- | --- | --- | --- |"]
    for a in f.alerts.values():
        labels = ", ".join(f"{k}={v}" for k, v in sorted((a.get("labels") or {}).items()))
        out.append(f"| {md((a.get('labels') or {}).get('alertname', '?'), 120)} "
                   f"| {md(a.get('status'), 20)} | {fmt_time(a.get('starts_at'))} "
                   f"| {fmt_time(a.get('ends_at'))} | {md(labels, 500)} |")
    out += ["", "## Audit", ""]
    if events:
        first, last = events[0], events[-1]
        out += [f"- **Events:** {len(events)} (seq {first.get('seq')} to {last.get('seq')})",
                f"- **First event:** seq {first.get('seq')}, hash `{code(first.get('hash'))}`",
                f"- **Last event:** seq {last.get('seq')}, hash `{code(last.get('hash'))}`",
                "- Each hash covers the record and the previous hash; check the whole chain "
                "with `GET /audit/verify` or `sre-agent audit verify`."]
    else:
        out.append("No events.")
    return "\n".join(out) + "\n"


def _diagnosis_lines(d: Mapping[str, Any] | None) -> list[str]:
    if not d:
        return ["No diagnosis was recorded."]
    conf = d.get("confidence")
    lines = [
        f"- **Engine:** {md(d.get('engine', '?'), 20)}"
        + (f" (model {md(d.get('model'), 80)})" if d.get("model") else ""),
        f"- **Confidence:** {float(conf):.2f}" if isinstance(conf, int | float)
        else "- **Confidence:** —",
        f"- **Category:** {md(d.get('category', 'unknown'), 40)}",
        f"- **Severity:** {md(d.get('severity', '?'), 40)}",
        f"- **Summary:** {md(d.get('summary'), 1000)}",
    ]
    if d.get("probable_cause"):
        lines.append(f"- **Probable cause:** {md(d.get('probable_cause'), 1000)}")
    if d.get("runbook"):
        lines.append(f"- **Runbook:** {md(d.get('runbook'), 120)}")
    if d.get("fallback_reason"):
        lines.append(f"- **Fallback reason:** {md(d.get('fallback_reason'), 500)}")
    evidence = d.get("evidence") or []
    if evidence:
        lines += ["", "Evidence cited:", ""] + [f"- {md(e, 500)}" for e in evidence[:50]]
    return lines
