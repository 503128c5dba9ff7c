"""The analyse stage: resolve targets, gather evidence, produce one Diagnosis, propose actions.

Runs once per incident (idempotent over the log: skipped when a DiagnosisProduced exists), never
once per alert or per redelivery.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog

from sre_agent.domain.diagnosis import Diagnosis, Engine
from sre_agent.domain.events import Actor, EventType, NewEvent, StoredEvent, payloads
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget
from sre_agent.domain.incident import IncidentStatus
from sre_agent.ingest_first import yield_to_ingest
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import Analyzer, EventStore, EvidenceSource, TargetResolver

if TYPE_CHECKING:
    from sre_agent.pipeline.explain import Explanations

log = structlog.get_logger("sre_agent.analyse")
_MAX_LOG_LINES, _MAX_LINE = 50, 500


def alert_context(work: IncidentWork) -> AlertContext:
    firing = [a for a in work.alerts if a["status"] == "firing"] or work.alerts
    items = [{"labels": a["labels"], "annotations": a["annotations"], "status": a["status"],
              "generator_url": a["generator_url"], "starts_at": a["starts_at"],
              "fingerprint": a["fingerprint"]} for a in firing]
    opened = next((e for e in work.events if e.type == EventType.INCIDENT_OPENED), None)
    common = dict(opened.data.get("common_labels", {})) if opened else {}
    return AlertContext(incident_id=work.id, group_key=str(work.incident["group_key"]),
                        alerts=items, common_labels=common)


def _trim(ev: Evidence) -> dict[str, Any]:
    out = ev.model_dump(mode="json")
    logs = out["data"].get("logs")
    if isinstance(logs, list):
        out["data"]["logs"] = [str(line)[:_MAX_LINE] for line in logs[-_MAX_LOG_LINES:]]
    return out


async def gather_evidence(
    ctx: AlertContext, resolver: TargetResolver | None, sources: Sequence[EvidenceSource],
) -> tuple[list[ResolvedTarget], list[Evidence]]:
    """Resolve targets, then run every collector concurrently. Never raises. In the
    pipeline each step first lets webhooks in flight be answered (ingest_first.py)."""
    targets: list[ResolvedTarget] = []
    evidence: list[Evidence] = []
    if resolver is not None:
        await yield_to_ingest()
        try:
            targets, resolution = await resolver.resolve(ctx)
        except Exception as exc:  # a resolver bug must not stop the analysis
            resolution = Evidence(source="target", name="resolution",
                                  status=EvidenceStatus.ERROR, error=repr(exc)[:300])
        evidence.append(resolution)
    await yield_to_ingest()
    results = await asyncio.gather(*(s.collect(ctx, targets) for s in sources),
                                   return_exceptions=True)
    for source, result in zip(sources, results, strict=True):
        if isinstance(result, BaseException):
            evidence.append(Evidence(source=source.name, name="collect",
                                     status=EvidenceStatus.ERROR, error=repr(result)[:300]))
        else:
            evidence.extend(result)
    return targets, evidence


def proposal_events(incident_id: str, diagnosis: Diagnosis,
                    targets: list[ResolvedTarget], alertname: str,
                    second_opinion: Diagnosis | None = None) -> list[NewEvent]:
    """``ActionProposed`` events; ``agreed`` is whether ``second_opinion`` (the rules, when the
    LLM produced ``diagnosis``) proposed the same (kind, target). One engine: agreed."""
    others = ({(a.kind.value, a.target) for a in second_opinion.proposed_actions}
              if second_opinion is not None else None)
    by_name = {t.name: t for t in targets}
    events: list[NewEvent] = []
    seen: set[tuple[str, str]] = set()
    for action in diagnosis.proposed_actions:
        key = (action.kind.value, action.target or "-")
        if key in seen:
            continue
        seen.add(key)
        target = by_name.get(action.target or "")
        events.append(NewEvent.of(payloads.ActionProposed(
            action_id="act-" + uuid.uuid4().hex[:16],
            idempotency_key=f"{incident_id}:{key[0]}:{key[1]}:1",
            kind=action.kind.value, target=action.target, reason=action.reason,
            alertname=alertname,
            proposal={"confidence": diagnosis.confidence, "engine": diagnosis.engine.value,
                      "target_verified": bool(target and target.verified),
                      "target_labels": dict(target.labels) if target else {},
                      "agreed": others is None or (action.kind.value, action.target) in others,
                      "needs_approval": action.needs_approval,
                      "params": action.params}), Actor.AGENT, incident_id))
    return events


class AnalyseStage:
    name = "analyse"

    def __init__(self, analyzer: Analyzer, *, resolver: TargetResolver | None = None,
                 sources: Sequence[EvidenceSource] = (),
                 queries_for: Callable[[AlertContext], dict[str, str]] | None = None,
                 rules: Analyzer | None = None,
                 explanations: Explanations | None = None) -> None:
        self.analyzer = analyzer
        self.resolver = resolver
        self.sources = list(sources)
        self.queries_for = queries_for
        self.rules = rules  # second opinion on an LLM diagnosis (require_agreement)
        self.explanations = explanations  # the LLM's text for diagnoses decided without it

    async def run(self, work: IncidentWork, store: EventStore) -> list[StoredEvent]:
        if work.has(EventType.DIAGNOSIS_PRODUCED):
            return []
        if work.incident["status"] == IncidentStatus.RESOLVED:
            return []  # resolved before we got to it: nothing to diagnose
        ctx = alert_context(work)
        if self.queries_for is not None:
            ctx.extra_queries = self.queries_for(ctx)
        targets, evidence = await gather_evidence(ctx, self.resolver, self.sources)
        await yield_to_ingest()
        diagnosis = await self.analyzer.analyse(ctx, targets, evidence)
        second = (await self.rules.analyse(ctx, targets, evidence)
                  if self.rules is not None and diagnosis.engine == Engine.LLM else None)
        alertname = ctx.alertnames[0] if ctx.alertnames else ""
        events = [
            NewEvent.of(payloads.EvidenceCollected(
                targets=[t.model_dump() for t in targets],
                evidence=[_trim(e) for e in evidence]), Actor.AGENT, work.id),
            NewEvent.of(payloads.DiagnosisProduced.model_validate(
                diagnosis.model_dump(mode="json")), Actor.AGENT, work.id),
            *proposal_events(work.id, diagnosis, targets, alertname, second),
        ]
        stored = await store.append(events)
        if diagnosis.explanation_pending and self.explanations is not None:
            # The actions stand whatever the LLM says: remediation goes on while it writes.
            self.explanations.start(work.id, self.explanations.explainer.explain(
                ctx, targets, evidence, diagnosis))
        log.info("diagnosis_produced", incident_id=work.id, engine=diagnosis.engine.value,
                 category=diagnosis.category.value, confidence=diagnosis.confidence,
                 actions=[a.kind.value for a in diagnosis.proposed_actions],
                 fallback_reason=diagnosis.fallback_reason)
        return stored
