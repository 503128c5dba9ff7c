"""Offline analysis of one notification: what the agent would conclude and decide, no effects.

Used by ``sre-agent analyze`` and ``POST /policy/simulate``. Evidence collectors are read-only,
nothing is appended to any store and no backend is called.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.control import ControlState
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.evidence import AlertContext
from sre_agent.domain.incident import highest_severity, incident_title
from sre_agent.domain.policy import GateHistory, Policy, decide, gate_state, precheck
from sre_agent.pipeline.analyse import gather_evidence, proposal_events
from sre_agent.pipeline.handlers.base import proposal_of
from sre_agent.ports import Analyzer, EvidenceSource, TargetResolver


def simulated_context(n: WebhookNotification) -> AlertContext:
    """What analysis sees of a notification (its firing alerts), outside any incident."""
    firing = [a for a in n.alerts if a.status == "firing"] or n.alerts
    return AlertContext(
        incident_id="simulated", group_key=n.group_key, common_labels=n.common_labels,
        alerts=[{"labels": a.labels, "annotations": a.annotations, "status": a.status,
                 "generator_url": a.generator_url, "starts_at": a.starts_at_key,
                 "fingerprint": a.fingerprint} for a in firing])


async def simulate(
    n: WebhookNotification, *, analyzer: Analyzer, resolver: TargetResolver | None,
    sources: Sequence[EvidenceSource], policy: Policy, control: ControlState,
    history: GateHistory | None = None,
    queries_for: Callable[[AlertContext], dict[str, str]] | None = None,
    available_kinds: frozenset[ActionKind] | None = None,
) -> dict[str, Any]:
    ctx = simulated_context(n)
    if queries_for is not None:
        ctx.extra_queries = queries_for(ctx)
    targets, evidence = await gather_evidence(ctx, resolver, sources)
    diagnosis = await analyzer.analyse(ctx, targets, evidence)
    alertname = ctx.alertnames[0] if ctx.alertnames else ""
    state = gate_state(history or GateHistory(), mode=control.mode, paused=control.paused,
                       now=time.time(), alertname=alertname)
    decisions = []
    for ev in proposal_events("simulated", diagnosis, targets, alertname):
        row = {**ev.data, "status": "proposed"}
        kind = ActionKind(row["kind"])
        d = (precheck(kind, incident_resolved=False, available=available_kinds)
             or decide(proposal_of(row), policy, state))
        outcome, reason = d.outcome.value, d.reason
        decisions.append({"kind": kind.value, "target": row["target"], "decision": outcome,
                          "reason": reason})
    return {
        "incident": {"group_key": n.group_key, "status": n.status, "title": incident_title(n),
                     "severity": highest_severity([a.labels for a in n.alerts]),
                     "alerts": len(n.alerts), "alertnames": ctx.alertnames,
                     "targets": [t.model_dump() for t in targets],
                     "unresolved": not targets},
        "diagnosis": diagnosis.model_dump(mode="json"),
        "evidence": [e.model_dump(mode="json") for e in evidence],
        "decisions": decisions,
    }
