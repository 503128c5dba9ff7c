"""A Markdown post-incident report, built from an incident's events alone. Pure.

Alert text is untrusted: every value from the log goes through :func:`md`, which puts it on one
line and escapes what Markdown would read as structure (headings, fences, links, HTML, tables).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sre_agent.domain.actions import ActionStatus, ActionTransition, action_transition
from sre_agent.domain.diagnosis import with_explanation
from sre_agent.domain.events import StoredEvent, payloads
from sre_agent.domain.notifications import chat_links
from sre_agent.domain.ownership import ownership
from sre_agent.web.incident_view import EventLike, action_names, as_events, describe_event
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
    resolved_by: str | None = None  # an operator who resolved it by hand
    escalations: list[str] = field(default_factory=list)
    alerts: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    diagnosis: Mapping[str, Any] | None = None
    actions: dict[str, _Action] = field(default_factory=dict)
    first_started: str | None = None
    first_verified: str | None = None


_DECISION_LABEL = {ActionStatus.PENDING_APPROVAL: "awaiting approval",
                   ActionStatus.APPROVED: "approved", ActionStatus.REJECTED: "rejected",
                   ActionStatus.BLOCKED: "blocked", ActionStatus.DRY_RUN: "dry run",
                   ActionStatus.EXPIRED: "expired"}


def _collect(events: Sequence[StoredEvent]) -> _Facts:
    facts = _Facts()
    names = action_names(events)
    for ev in events:
        p, at = ev.payload, ev.at
        facts.incident_id = str(ev.incident_id or facts.incident_id)
        match p:
            case payloads.IncidentOpened():
                facts.title, facts.severity = p.title, str(ev.data.get("severity", "none"))
                facts.group_key, facts.opened_at = p.group_key, at
            case payloads.AlertReceived() | payloads.AlertResolved():
                facts.alerts[(p.fingerprint, p.starts_at)] = dict(ev.data)
            case payloads.IncidentResolved():
                facts.resolved_at = at
                facts.resolved_by = ev.actor if p.manual else None
            case payloads.IncidentEscalated():
                facts.escalations.append(p.reason)
            case payloads.DiagnosisProduced():
                facts.diagnosis = ev.data
            case payloads.DiagnosisExplained():
                if facts.diagnosis is not None:
                    facts.diagnosis = with_explanation(dict(facts.diagnosis), ev.data)
            case payloads.ActionProposed():
                facts.actions[p.action_id] = _Action(p.action_id, names.get(p.action_id,
                                                                             p.action_id),
                                                     p.alertname, p.reason)
            case _:
                step = action_transition(ev)
                action = facts.actions.get(step.action_id) if step else None
                if step is not None and action is not None:
                    _apply_step(facts, action, step)
    return facts


def _apply_step(facts: _Facts, action: _Action, step: ActionTransition) -> None:
    """Word one lifecycle step (the rule that maps events to steps is the domain's)."""
    reason = step.reason or ""
    label = _DECISION_LABEL.get(step.status)
    if step.status == ActionStatus.PENDING_APPROVAL:
        action.decision = "awaiting approval"
    elif label is not None:
        action.decision = f"{label}: {reason}" if reason else label
        action.decided_by = step.actor or "?"
    elif step.started:
        if action.decision in ("proposed", "awaiting approval"):
            action.decision = f"allowed by the gate: {reason}" if reason else "allowed"
            action.decided_by = step.actor or "?"
        action.started_at = step.at
        facts.first_started = facts.first_started or step.at
    elif step.result is not None:
        action.outcome = ("succeeded" if step.status == ActionStatus.SUCCEEDED
                          else f"failed: {step.result.get('error') or 'unknown error'}")
        if step.result.get("reconciled"):
            action.outcome += " (reconciled after a restart)"
    elif step.verification is not None:
        error = step.verification.get("error") or "?"
        action.verification = {ActionStatus.VERIFIED: "passed",
                               ActionStatus.VERIFICATION_INCONCLUSIVE: f"inconclusive: {error}",
                               }.get(step.status, f"failed: {error}")
        if step.success:
            facts.first_verified = facts.first_verified or step.at


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
    if f.resolved_at and f.resolved_by:
        parts.append(f"Resolved by hand by {md(f.resolved_by, 80)} at "
                     f"{fmt_time(f.resolved_at)}, "
                     f"{fmt_duration(seconds_between(f.opened_at, f.resolved_at))} after opening.")
    elif f.resolved_at:
        parts.append(f"All alerts resolved at {fmt_time(f.resolved_at)}, "
                     f"{fmt_duration(seconds_between(f.opened_at, f.resolved_at))} after opening.")
    else:
        parts.append("The incident is not resolved yet.")
    return " ".join(parts)


def _ownership_lines(events: Sequence[StoredEvent]) -> list[str]:
    owner = ownership(events)
    lines = []
    if owner.acknowledged_by:
        lines.append(f"- **Acknowledged:** by {md(owner.acknowledged_by, 80)} at "
                     f"{fmt_time(owner.acknowledged_at)}")
    if owner.assignee:
        lines.append(f"- **Assigned to:** {md(owner.assignee, 80)} "
                     f"(by {md(owner.assigned_by, 80)})")
    return lines


def build_report(events: Iterable[EventLike], *, generated_at: str) -> str:
    """The report for one incident, from its events in log order."""
    events = as_events(events)
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
        *[f"- **{name.capitalize()} message:** <{link}>"
          for name, link in sorted(chat_links(events).items()) if ">" not in link],
        f"- **Report generated:** {fmt_time(generated_at)}",
        *_ownership_lines(events),
        "", "## Summary", "", _summary(f), "",
        "## Timeline", "", "| Time (UTC) | Seq | Event | Actor | Detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for ev in events:
        out.append(f"| {fmt_time(ev.at or None)} | {ev.seq} | {md(ev.type, 40)} "
                   f"| {md(ev.actor, 80)} | {md(describe_event(ev, names), 400)} |")
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
        out += [f"- **Events:** {len(events)} (seq {first.seq} to {last.seq})",
                f"- **First event:** seq {first.seq}, hash `{code(first.hash)}`",
                f"- **Last event:** seq {last.seq}, hash `{code(last.hash)}`",
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
