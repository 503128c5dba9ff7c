"""The LLM's explanation of a diagnosis that was proposed without waiting for it.

When no LLM answer could change an incident's actions (``analysis/combine.py``, rule 5), the
analyse stage records the rules' diagnosis with ``explanation_pending`` and starts the LLM call
here in the background: the remediation stages (and an operator's approval) never wait for it.
When the LLM answers, or fails, ``DiagnosisExplained`` is appended; it changes no action.

The explain stage, the last of a run, starts the call from the log when this process has none
in flight for a pending diagnosis (a run after a restart, or on another replica). The text is
best effort: a process that stops while the LLM writes loses the call, and the incident's next
run (a new alert, a command, the resume sweep after any later event) asks again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import structlog

from sre_agent.domain.diagnosis import Diagnosis
from sre_agent.domain.events import Actor, EventType, NewEvent, StoredEvent, payloads
from sre_agent.domain.evidence import Evidence, ResolvedTarget
from sre_agent.pipeline.analyse import alert_context
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import EventStore, Explainer

log = structlog.get_logger("sre_agent.explain")
MAX_IN_FLIGHT = 100


def explanation_event(incident_id: str, explained: Diagnosis) -> NewEvent:
    text = explained.fallback_reason is None
    return NewEvent.of(payloads.DiagnosisExplained(
        summary=explained.summary if text else "",
        probable_cause=explained.probable_cause if text else "",
        evidence=list(explained.evidence) if text else [],
        model=explained.model, tokens=explained.tokens, latency_ms=explained.latency_ms,
        fallback_reason=explained.fallback_reason,
        dropped_actions=list(explained.dropped_actions),
        tool_calls=list(explained.tool_calls)), Actor.AGENT, incident_id)


class Explanations:
    """Explanations being written in this process, by incident id. At most ``MAX_IN_FLIGHT``
    at once (beyond that a pending diagnosis keeps waiting for a later run): each call takes
    a slot of what is often a one-slot local server."""

    def __init__(self, explainer: Explainer, store: EventStore) -> None:
        self.explainer = explainer
        self.store = store
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, incident_id: str, call: Coroutine[Any, Any, Diagnosis]) -> bool:
        if incident_id in self._tasks or len(self._tasks) >= MAX_IN_FLIGHT:
            call.close()
            return False
        task = asyncio.create_task(self._write(incident_id, call), name=f"explain-{incident_id}")
        self._tasks[incident_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(incident_id, None))
        return True

    async def _write(self, incident_id: str, call: Coroutine[Any, Any, Diagnosis]) -> None:
        explained = await call  # ``explain`` never raises
        try:
            done = await self.store.list_events(incident_id=incident_id, limit=100_000)
            if any(e.type == EventType.DIAGNOSIS_EXPLAINED for e in done):
                return  # another replica explained it meanwhile
            await self.store.append([explanation_event(incident_id, explained)])
        except Exception as exc:  # the store is down: the next run asks again
            log.warning("explanation_not_recorded", incident_id=incident_id, error=str(exc))
            return
        log.info("diagnosis_explained", incident_id=incident_id,
                 fallback_reason=explained.fallback_reason, tokens=explained.tokens,
                 latency_ms=round(explained.latency_ms))

    def in_flight(self, incident_id: str) -> bool:
        return incident_id in self._tasks

    async def wait(self, timeout: float = 300.0) -> None:
        """Until every explanation in flight is recorded (tests, shutdown)."""
        if self._tasks:
            await asyncio.wait_for(asyncio.gather(*list(self._tasks.values()),
                                                  return_exceptions=True), timeout)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)


def _last(work: IncidentWork, event_type: str) -> StoredEvent | None:
    return next((e for e in reversed(work.events) if e.type == event_type), None)


class ExplainStage:
    """Starts, from the log, the explanation of a pending diagnosis that nobody here is
    writing. Never waits for the LLM."""

    name = "explain"

    def __init__(self, explanations: Explanations) -> None:
        self.explanations = explanations

    async def stop(self) -> None:
        """At shutdown: explanations in flight are dropped; a later run of the incident asks
        again."""
        await self.explanations.stop()

    async def run(self, work: IncidentWork, store: EventStore) -> list[StoredEvent]:
        """Appends nothing itself: the explanation, recorded later, is not part of this run."""
        produced = _last(work, EventType.DIAGNOSIS_PRODUCED)
        if produced is None or not produced.data.get("explanation_pending") \
                or work.has(EventType.DIAGNOSIS_EXPLAINED) \
                or self.explanations.in_flight(work.id):
            return []
        collected = _last(work, EventType.EVIDENCE_COLLECTED)
        data = collected.data if collected is not None else {}
        targets = [ResolvedTarget.model_validate(t) for t in data.get("targets", [])]
        evidence = [Evidence.model_validate(e) for e in data.get("evidence", [])]
        decided = Diagnosis.model_validate(produced.data)
        self.explanations.start(work.id, self.explanations.explainer.explain(
            alert_context(work), targets, evidence, decided))
        return []
