"""The deterministic analyser: YAML runbooks matched against an alert and its evidence.

Runbooks ship in ``sre_agent/analysis/runbooks/*.yml``; files in ``runbooks_dir`` replace shipped
runbooks of the same ``name``. A file holds one runbook mapping or ``runbooks: [...]``::

    name: target-down            # unique, [a-z0-9][a-z0-9_.-]*
    priority: 800                # higher is tried first; the first match wins
    match: {any: [{alertname: {regex: "TargetDown|InstanceDown"}}, {container: exited}]}
    category: availability       # a domain Category
    summary: "{instance} (job {job}) is down"         # also probable_cause: "..."
    severity: from_label         # or critical | warning | info
    confidence: high             # 0..1, or high (0.9) | medium (0.6) | low (0.3)
    issue_detected: true
    actions:
      - {kind: start_container, target: resolved, when: {container: exited}, reason: "..."}
      - {kind: escalate, when: {severity: critical}, reason: "..."}
    fallback: [escalate]         # instead of container actions when no target is resolved
    queries:                     # name -> PromQL; the evidence stage runs it as query:<name>
      error_count: 'sum(increase(http_requests_total{{job="{job}",code=~"5.."}}[5m]))'

A condition is a mapping; every key given must hold (AND), ``{}`` always holds:

- ``alertname: M``, ``label: {NAME: M, ...}``: some alert of the group matches; ``M`` is a
  string (equals), a list (in), ``{regex: ...}`` (anchored), ``{present: true}`` or
  ``{absent: true}``. ``severity: [critical, ...]``: some alert's severity label.
- ``expr: M``: the rule's own PromQL (from generatorURL); ``equals`` ignores whitespace and
  ``regex`` searches, unanchored.
- ``container: STATE | [STATE, ...]``: Docker evidence shows running, exited (or dead),
  not_running, restarting, paused, unhealthy, healthy or oom_killed.
- ``metric: {name: query:NAME | alert_expr | up, op: ">", value: 0.9}`` (ops > >= < <= == !=;
  no value is false); ``probe: unhealthy | healthy``; ``response_ms: {op: ">", value: 5000}``.
- ``any: [...]`` (one at least), ``all: [...]``, ``not: {...}``.

An action is proposed when its ``when`` holds (or it has none). A ``target: resolved`` action is
proposed per resolved target, its ``when`` seeing that target's container only; with no target,
the runbook's ``fallback`` kinds are proposed (reason "no container resolved") if ``when`` holds.

Templates (summary, probable_cause, reasons, queries) use ``str.format_map`` over the first
firing alert's labels plus ``{targets}`` (and ``{target}`` in per-target reasons). Placeholders
are plain names (literal braces: ``{{ }}``); values are inserted as text, never evaluated; a
missing label renders empty, and a query naming one is not run. Query values are escaped for
PromQL strings. Alert annotations are read only by the classifier, as words matched against a
fixed table: alert text is data, never instructions.

Runbooks with a negative ``priority`` are fallbacks: before the first of them is tried, the
classifier (``analysis/classifier.py``) looks at the alert's name, expression and annotations;
if it finds a category, it answers (notify or escalate, never a container action). Conditions
may also test what it found: ``classified: {category: [..], family: [..], stateful: BOOL,
down: BOOL}``, and ``category: from_classifier`` takes its category. Templates also see
``{category}`` (the classifier's) and ``{value}`` (the alert expression's current value, when
the evidence stage measured it).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from sre_agent.analysis.conditions import Facts, describe_container, evaluate, short
from sre_agent.analysis.runbook_model import (
    Condition,
    Runbook,
    RunbookError,
    load_runbooks,
    render,
    render_query,
)
from sre_agent.domain.diagnosis import (
    CONTAINER_ACTIONS,
    ActionKind,
    Category,
    Diagnosis,
    Engine,
    ProposedAction,
    Severity,
)
from sre_agent.domain.evidence import AlertContext, Evidence, ResolvedTarget

__all__ = ["RulesAnalyzer", "RunbookError"]

_SEVERITY = {"critical": Severity.CRITICAL, "page": Severity.CRITICAL, "error": Severity.CRITICAL,
             "warning": Severity.WARNING, "warn": Severity.WARNING,
             "info": Severity.INFO, "none": Severity.INFO}


def _severity(setting: str, facts: Facts) -> Severity:
    if setting != "from_label":
        return Severity(setting)
    known = [s for a in facts.alerts if (s := _SEVERITY.get(a.get("severity", "").lower()))]
    return max(known, key=list(Severity)[::-1].index) if known else Severity.WARNING


# Tried after every runbook, so that overriding ``default`` can never leave an alert unanswered.
_LAST_RESORT = Runbook.model_validate({
    "name": "no-runbook-matched", "category": "unknown", "confidence": 0.1,
    "summary": "{alertname}: no runbook matched", "actions": [
        {"kind": "notify", "reason": "no runbook matched"},
        {"kind": "escalate", "reason": "no runbook matched"}]})


class RulesAnalyzer:
    """Deterministic analysis from runbooks; pure CPU once constructed."""

    name = "rules"

    def __init__(self, runbooks_dir: str | Path | None = None) -> None:
        self.origins: dict[str, str] = {}
        self.runbooks: list[Runbook] = [*load_runbooks(runbooks_dir, self.origins),
                                        _LAST_RESORT]

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        return self.analyse_sync(ctx, targets, evidence)

    def queries_for(self, ctx: AlertContext) -> dict[str, str]:
        """PromQL that the runbooks which may still match this alert want run, by name."""
        facts = Facts.build(ctx, None)
        labels = facts.alerts[0] if facts.alerts else {}
        queries: dict[str, str] = {}
        for book in self.runbooks:
            if book.priority < 0 and _classified(facts):
                break  # the classifier answers before any fallback runbook
            result, _ = evaluate(book.match, facts)
            if result is False:
                continue
            for qname, template in book.queries.items():
                query = render_query(template, labels)
                if query is not None:
                    queries.setdefault(qname, query)
            if result is True:  # nothing of lower priority can win any more
                break
        return queries

    @staticmethod
    def classification(ctx: AlertContext) -> dict[str, Any]:
        """What the classifier makes of the first firing alert, as plain data."""
        k = Facts.build(ctx, None).classification
        assert k is not None
        return {"category": str(k.category), "confidence": k.confidence, "reason": k.reason,
                "family": k.family, "stateful": k.stateful, "down": k.down}

    def trace(self, ctx: AlertContext, evidence: list[Evidence]) -> list[dict[str, str]]:
        """The runbooks tried for this alert, in order, up to the one that answers: name,
        origin file, priority and outcome (``no match`` or ``matched: why``)."""
        facts = Facts.build(ctx, evidence)
        rows: list[dict[str, str]] = []
        for book in self.runbooks:
            if book.priority < 0 and _classified(facts):
                k = facts.classification
                assert k is not None
                rows.append({"runbook": "classifier", "origin": "analysis/classifier.py",
                             "priority": "between 0 and -1", "outcome": f"matched: {k.reason}"})
                break
            matched, cites = evaluate(book.match, facts)
            rows.append({"runbook": book.name, "priority": str(book.priority),
                         "origin": self.origins.get(book.name, "built in"),
                         "outcome": ("matched: " + ("; ".join(cites[:3]) or "matches anything"))
                         if matched else "no match"})
            if matched:
                break
        return rows

    def analyse_sync(self, ctx: AlertContext, targets: list[ResolvedTarget],
                     evidence: list[Evidence]) -> Diagnosis:
        started = time.perf_counter()
        facts = Facts.build(ctx, evidence)
        for book in self.runbooks:  # the last one matches anything
            if book.priority < 0 and _classified(facts):
                diagnosis = classifier_diagnosis(facts, targets)
                break
            matched, cites = evaluate(book.match, facts)
            if matched:
                diagnosis = self._diagnose(book, cites, facts, targets)
                break
        diagnosis.latency_ms = (time.perf_counter() - started) * 1000
        return diagnosis

    def _diagnose(self, book: Runbook, cites: list[str], facts: Facts,
                  targets: list[ResolvedTarget]) -> Diagnosis:
        by_name = {c["container"]: c for c in facts.containers}
        values = _values(facts, targets)
        actions: list[ProposedAction] = []

        def holds(when: Condition | None, f: Facts) -> bool:
            ok, why = (True, []) if when is None else evaluate(when, f)
            cites.extend(why if ok else [])
            return ok is True

        def propose(kind: ActionKind, target: str | None, reason: str) -> None:
            if not any(a.kind == kind and a.target == target for a in actions):
                actions.append(ProposedAction(kind=kind, target=target, reason=reason))

        for spec in book.actions:
            if spec.target is None:
                if holds(spec.when, facts):
                    propose(spec.kind, None, _text(spec.reason, values) or book.name)
                continue
            if not targets and holds(spec.when, facts):
                for kind in book.fallback:
                    propose(kind, None, f"no container resolved (wanted {spec.kind})")
            for t in targets:
                own = replace(facts, containers=[by_name[t.name]] if t.name in by_name else [])
                if holds(spec.when, own):
                    propose(spec.kind, t.name, _text(spec.reason, {**values, "target": t.name})
                            or book.name)

        cites += [describe_container(by_name[t.name]) for t in targets if t.name in by_name]
        severity = _severity(book.severity, facts)
        category = (Category(values["category"]) if book.category == "from_classifier"
                    else book.category)
        cited = list(dict.fromkeys(cites))
        return Diagnosis(
            summary=_text(book.summary, values) or book.name,
            probable_cause=_text(book.probable_cause, values),
            category=category, severity=severity, confidence=book.confidence,
            evidence=cited, proposed_actions=actions,
            issue_detected=book.issue_detected, engine=Engine.RULES, runbook=book.name,
            match_reason=f"runbook {book.name}: " + ("; ".join(cited[:3]) or "matches anything"),
            requires_immediate_action=severity == Severity.CRITICAL
            and any(a.kind in CONTAINER_ACTIONS for a in actions))


def _classified(facts: Facts) -> bool:
    return facts.classification is not None and facts.classification.category != Category.UNKNOWN


def _values(facts: Facts, targets: list[ResolvedTarget]) -> dict[str, str]:
    """Template values: the first alert's labels, ``targets``, ``category`` and ``value``."""
    labels = facts.alerts[0] if facts.alerts else {}
    value = facts.metrics.get("alert_expr")
    k = facts.classification
    return {"targets": ", ".join(t.name for t in targets),
            "category": str(k.category if k else Category.UNKNOWN),
            "value": (v := f"{value:.4g}" if isinstance(value, int | float) else ""),
            "value_note": f"(value {v})" if v else "",
            **{key: short(v, 200) for key, v in labels.items()}}


# What the classifier says per category; it never proposes a container action.
_CLASSIFIED = {
    Category.AVAILABILITY: ("{subject} is down, missing or degraded",
                            "a component stopped, is unreachable or lost redundancy"),
    Category.ERRORS: ("{subject} is failing operations",
                      "requests, jobs or writes fail: the service, a dependency or a deploy"),
    Category.LATENCY: ("{subject} is slow or lagging behind",
                       "saturation, a slow dependency or a backlog"),
    Category.SATURATION: ("{subject} is near a resource limit",
                          "load above what the resource or its limit allows"),
    Category.CAPACITY: ("{subject} is running out of space or quota",
                        "data, usage or reservations grow faster than capacity"),
    Category.CONFIGURATION: ("{subject} runs with a broken, stale or drifting configuration",
                             "a change that did not load, or settings (or clocks) that differ"),
    Category.SECURITY: ("{subject} has a certificate or access problem",
                        "a certificate expires or access is refused or abused"),
}


def classifier_diagnosis(facts: Facts, targets: list[ResolvedTarget]) -> Diagnosis:
    """A diagnosis from the classifier alone: a specific summary, notify or escalate."""
    k = facts.classification
    assert k is not None
    values = _values(facts, targets)
    subject = " ".join(x for x in (values.get("job"), values.get("instance")) if x) or (
        values["targets"] or "the alerting service")
    what, cause = _CLASSIFIED[k.category]
    name = values.get("alertname") or "alert"
    value = f" (value {values['value']})" if values["value"] else ""
    severity = _severity("from_label", facts)
    kind = ActionKind.ESCALATE if severity == Severity.CRITICAL else ActionKind.NOTIFY
    reason = f"classified as {k.category} from {k.reason.split(': ', 1)[-1]}"
    return Diagnosis(
        summary=f"{name}: {what.format(subject=subject)}{value}",
        probable_cause=f"{cause[0].upper()}{cause[1:]} ({k.family or 'unknown'} family).",
        category=k.category, severity=severity, confidence=k.confidence,
        evidence=[f"classifier: {k.reason}",
                  *[describe_container(c) for c in facts.containers]],
        proposed_actions=[ProposedAction(kind=kind, reason=reason)],
        engine=Engine.RULES, runbook="classifier", match_reason=f"classifier: {k.reason}")


def _text(template: str, values: dict[str, str]) -> str:
    """A rendered template with the gaps that missing labels leave closed up."""
    return " ".join(render(template, values).split()).strip(" :,-")
