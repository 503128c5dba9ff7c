"""Runbook conditions: the facts they look at (alert labels, the rule's expression, the
classifier's view, Docker, Prometheus and probe evidence) and their three-valued evaluation.
The format is in rules.py."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sre_agent.analysis.classifier import Classification, classify
from sre_agent.analysis.runbook_model import Condition
from sre_agent.domain.alertmanager import expression_from_generator_url
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus

__all__ = ["Facts", "Result", "describe_container", "evaluate", "short"]

Tri = bool | None  # None: cannot tell yet (that evidence is not known)
Result = tuple[Tri, list[str]]  # outcome, and the evidence it cites


def short(value: Any, limit: int = 120) -> str:
    return text if len(text := str(value)) <= limit else text[: limit - 1] + "…"


def describe_container(data: dict[str, Any]) -> str:
    name, status = short(data.get("container", "?")), data.get("status", "unknown")
    oom = " (OOMKilled)" if data.get("oom_killed") else ""
    if status in ("exited", "dead"):
        text = f"container {name} exited with code {data.get('exit_code', '?')}{oom}"
    else:
        health = data.get("health")
        text = f"container {name} is {short(status, 20)}" + (
            f" ({health})" if health in ("healthy", "unhealthy", "starting") else oom)
    n = data.get("restart_count")
    return text + (f", restarted {n} times" if isinstance(n, int) and n else "")


@dataclass(frozen=True)
class Facts:
    """What conditions look at. ``known=False``: evidence not gathered yet (three-valued)."""

    alerts: list[dict[str, str]]
    exprs: list[str]
    containers: list[dict[str, Any]]
    metrics: dict[str, Any]
    probes: list[dict[str, Any]]
    known: bool = True
    classification: Classification | None = None

    @classmethod
    def build(cls, ctx: AlertContext, evidence: list[Evidence] | None) -> Facts:
        firing = [a for a in ctx.alerts if a.get("status", "firing") == "firing"] or ctx.alerts
        alerts = [{str(k): str(v) for k, v in dict(a.get("labels") or {}).items()}
                  for a in firing] or [dict(ctx.common_labels)]
        exprs = [e for a in firing
                 if (e := expression_from_generator_url(str(a.get("generator_url") or "")))]
        ev = evidence or []
        containers = [{**e.data, "container": e.data.get("container") or e.name}
                      for e in ev if e.source == "docker" and e.status == EvidenceStatus.OK]
        metrics = {e.name: e.data.get("value") for e in ev
                   if e.source == "prometheus" and e.status != EvidenceStatus.ERROR}
        probes = [{**e.data, "url": e.data.get("url") or e.name} for e in ev
                  if e.source == "http_probe" and isinstance(e.data.get("healthy"), bool)]
        first = firing[0] if firing else {}
        annotations = {str(k): str(v) for k, v in dict(first.get("annotations") or {}).items()}
        found = classify(alerts[0].get("alertname", "") if alerts else "", exprs, annotations)
        return cls(alerts, exprs, containers, metrics, probes, known=evidence is not None,
                   classification=found)


def _check_labels(cond: Condition, f: Facts) -> list[Result]:
    out: list[Result] = []
    if (m := cond.alertname) is not None:
        names = [a.get("alertname", "") for a in f.alerts if m.test(a.get("alertname"))]
        out.append((bool(names), [f"alertname {short(n)}" for n in names[:1] if n]))
    if (lm := cond.label) is not None:
        hit = next((a for a in f.alerts if all(m.test(a.get(k)) for k, m in lm.items())), None)
        out.append((hit is not None, [f"label {k}={short(hit[k])}" for k in lm if hit.get(k)]
                    if hit else []))
    if cond.severity is not None:
        wanted = {s.lower() for s in cond.severity}
        sev = [a["severity"] for a in f.alerts if a.get("severity", "").lower() in wanted]
        out.append((bool(sev), [f"severity {short(s)}" for s in sev[:1]]))
    if (c := cond.classified) is not None and (k := f.classification) is not None:
        ok = ((c.category is None or k.category in c.category)
              and (c.family is None or k.family in c.family)
              and (c.stateful is None or k.stateful == c.stateful)
              and (c.down is None or k.down == c.down))
        out.append((ok, [f"classified {k.reason}"] if ok else []))
    if (e := cond.expr) is not None:
        hits = [x for x in f.exprs if e.test(x, anchored=False)]
        ok = bool(hits) or (not f.exprs and e.test(None))
        out.append((ok, [f"alert expression `{short(x)}`" for x in hits[:1]]))
    return out


def _check_evidence(cond: Condition, f: Facts) -> list[Result]:
    if all(x is None for x in (cond.container, cond.metric, cond.probe, cond.response_ms)):
        return []
    if not f.known:
        return [(None, [])]
    out: list[Result] = []
    if (states := cond.container) is not None:
        hits = [c for c in f.containers if any(s.holds(c) for s in states)]
        out.append((bool(hits), [describe_container(c) for c in hits]))
    if (mc := cond.metric) is not None:
        ok = mc.test(value := f.metrics.get(mc.name))
        out.append((ok, [f"prometheus {short(mc.name)} = {value:g} ({mc.op} {mc.value:g})"]
                    if ok else []))
    if cond.probe == "unhealthy":
        bad = [p for p in f.probes if not p["healthy"]]
        out.append((bool(bad), [f"probe {short(p['url'])} unhealthy "
                                f"(status {p.get('status_code')})" for p in bad]))
    elif cond.probe == "healthy":
        ok = bool(f.probes) and all(p["healthy"] for p in f.probes)
        out.append((ok, [f"probe {short(p['url'])} healthy" for p in f.probes if ok]))
    if (t := cond.response_ms) is not None:
        slow = [p for p in f.probes if t.test(p.get("response_ms"))]
        out.append((bool(slow), [f"probe {short(p['url'])} took {float(p['response_ms']):.0f}"
                                 f" ms ({t.op} {t.value:g})" for p in slow]))
    return out


def _all(parts: list[Result]) -> Result:
    if any(r is False for r, _ in parts):
        return False, []
    if any(r is None for r, _ in parts):
        return None, []
    return True, [c for _, cites in parts for c in cites]


def _any(parts: list[Result]) -> Result:
    if any(r is True for r, _ in parts):
        return True, [c for r, cites in parts if r is True for c in cites]
    return (None if any(r is None for r, _ in parts) else False), []


def evaluate(cond: Condition, facts: Facts) -> Result:
    """True/False, or None when it depends on evidence not known yet; plus what matched."""
    parts = _check_labels(cond, facts) + _check_evidence(cond, facts)
    parts += [evaluate(c, facts) for c in cond.all or []]
    if cond.any is not None:
        parts.append(_any([evaluate(c, facts) for c in cond.any]))
    if cond.not_ is not None:
        res, _ = evaluate(cond.not_, facts)
        parts.append((None if res is None else not res, []))
    return _all(parts)
