"""The collected evidence, readable: container state and log tail, Prometheus values next to
the alert's threshold, probe results, target resolution. Pure; built from the last
EvidenceCollected event. Log lines were redacted by the collector; everything stays plain
text that the templates escape."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sre_agent.domain.events import StoredEvent, payloads
from sre_agent.web.views import Badge, badge_for, clip, fmt_time

STATUS = {"ok": ("ok", "✓", "ok"), "error": ("bad", "✕", "error"),
          "no_data": ("off", "∅", "no data")}
SOURCES = {"docker": "Container", "prometheus": "Prometheus", "http_probe": "HTTP probe",
           "target": "Targets"}
MAX_LOG_LINES = 50
MAX_SERIES = 10
# A threshold at the end of an alert expression: ``rate(x[5m]) > 0.5``.
_THRESHOLD = re.compile(r"(>=|<=|==|!=|>|<)\s*(?:bool\s+)?(-?[0-9][0-9.eE+-]*)\s*\)*\s*$")


@dataclass(frozen=True)
class EvidenceItem:
    source: str
    title: str
    status: Badge
    query: str = ""
    facts: list[tuple[str, str]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    lines_label: str = ""
    error: str = ""


def threshold_of(expr: str) -> str:
    """``> 0.5`` for ``rate(x[5m]) > 0.5``; empty when the expression has none at its end."""
    found = _THRESHOLD.search(expr or "")
    return f"{found.group(1)} {found.group(2)}" if found else ""


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "—" if value is None else str(value).lower()
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return clip(value, 40)


def _metric(labels: Mapping[str, Any]) -> str:
    inner = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{labels.get('__name__', '')}{{{inner}}}" if inner or labels.get("__name__") else "{}"


def _docker(d: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    facts = [("State", str(d.get("status") or "—")), ("Health", str(d.get("health") or "—")),
             ("Restarts", str(d.get("restart_count", "—"))),
             ("Exit code", str(d.get("exit_code", "—"))),
             ("Started", fmt_time(d.get("started_at"))),
             ("OOM killed", "yes" if d.get("oom_killed") else "no"),
             ("Image", clip(d.get("image") or "—", 120))]
    if d.get("health_last_output"):
        facts.append(("Last health check", clip(
            f"exit {d.get('health_last_exit_code')}, failing streak "
            f"{d.get('health_failing_streak', 0)}: {d['health_last_output']}", 300)))
    logs = d.get("logs")
    lines = [clip(x, 500) for x in logs[-MAX_LOG_LINES:]] if isinstance(logs, list) else []
    return facts, lines


def _prometheus(name: str, d: Mapping[str, Any], alert_exprs: Iterable[str]
                ) -> tuple[list[tuple[str, str]], list[str]]:
    query = str(d.get("query") or "")
    facts = [("Value", _num(d.get("value")))]
    thr = threshold_of(query) if name == "alert_expr" else ""
    if not thr and query in set(alert_exprs):
        thr = threshold_of(query)
    if name == "alert_expr":
        facts.append(("Alert threshold", thr or "none in the expression"))
        facts.append(("Condition", "true now (the alert's expression returns series)"
                      if d.get("series") else "not true now (no series returned)"))
    series = d.get("series") or []
    total = d.get("series_total") or len(series)
    facts.append(("Series", str(total)))
    rng = d.get("range")
    if isinstance(rng, list) and rng:
        values = [float(p[1]) for p in rng if isinstance(p, list | tuple) and len(p) == 2
                  and isinstance(p[1], int | float)]
        if values:
            facts.append(("Over the range", f"min {min(values):.4g}, max {max(values):.4g}, "
                                            f"last {values[-1]:.4g} ({len(values)} points)"))
    if d.get("range_error"):
        facts.append(("Range query", clip(d["range_error"], 200)))
    lines = [clip(f"{_metric(s.get('metric') or {})} = {_num(s.get('value'))}", 300)
             for s in series[:MAX_SERIES] if isinstance(s, Mapping)]
    return facts, lines


def _probe(d: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    ms = d.get("response_ms")
    facts = [("URL", clip(d.get("url") or "—", 200)),
             ("HTTP status", str(d.get("status_code") or "no answer")),
             ("Healthy", "yes" if d.get("healthy") else "no"),
             ("Latency", f"{float(ms):.0f} ms" if isinstance(ms, int | float) else "—")]
    if d.get("target"):
        facts.append(("Target", clip(d["target"], 120)))
    body = d.get("body_excerpt")
    return facts, [clip(body, 500)] if body else []


def _targets(d: Mapping[str, Any]) -> tuple[list[tuple[str, str]], list[str]]:
    scope = d.get("in_scope") or {}
    lines = [clip(f"{t.get('name')} via {t.get('via')}"
                  + ("" if t.get("verified") else " (not confirmed by Docker)")
                  + ("" if scope.get(t.get("name"), True) else " (out of scope)"), 300)
             for t in d.get("targets") or [] if isinstance(t, Mapping)]
    facts = [("Resolved", str(len(lines)))]
    if d.get("reason"):
        facts.append(("Why", clip(d["reason"], 300)))
    if d.get("unresolved"):
        facts.append(("Unresolved", clip(", ".join(map(str, d["unresolved"])), 300)))
    return facts, lines


def evidence_items(events: Iterable[StoredEvent]) -> list[EvidenceItem]:
    """The last EvidenceCollected of the incident, one readable item per piece."""
    collected: payloads.EvidenceCollected | None = None
    for ev in events:
        if isinstance(ev.payload, payloads.EvidenceCollected):
            collected = ev.payload
    if collected is None:
        return []
    exprs = [str(e.get("data", {}).get("query", "")) for e in collected.evidence
             if isinstance(e, Mapping) and e.get("name") == "alert_expr"]
    items: list[EvidenceItem] = []
    for e in collected.evidence:
        if not isinstance(e, Mapping):
            continue
        source, name = str(e.get("source", "?")), str(e.get("name", ""))
        d = e.get("data") if isinstance(e.get("data"), Mapping) else {}
        assert isinstance(d, Mapping)
        label = ""
        if source == "docker":
            facts, lines = _docker(d)
            label = "Log tail"
        elif source == "prometheus":
            facts, lines = _prometheus(name, d, exprs)
            label = "Series"
        elif source == "http_probe":
            facts, lines = _probe(d)
            label = "Body"
        elif source == "target":
            facts, lines = _targets(d)
            label = "Targets"
        else:
            facts = [(clip(k, 60), clip(v, 200)) for k, v in sorted(d.items())
                     if isinstance(v, str | int | float | bool)][:20]
            lines = []
        title = {"alert_expr": "Alert expression", "up": "Target up",
                 "query_range": "Range"}.get(name, name.removeprefix("query:"))
        items.append(EvidenceItem(
            source=SOURCES.get(source, clip(source, 40)), title=clip(title, 200),
            status=badge_for(STATUS, str(e.get("status"))),
            query=clip(d.get("query") or "", 1000) if source == "prometheus" else "",
            facts=facts, lines=lines, lines_label=label if lines else "",
            error=clip(e.get("error") or "", 500)))
    return items
