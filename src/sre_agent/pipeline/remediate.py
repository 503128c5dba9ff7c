"""The remediation stage: gate every proposal, run what the gate allows exactly once, verify.

Exactly once: ``ActionStarted`` is durable before the backend is called. An action found
``running`` when an incident is processed can only be left over from a process that died
mid-action (within one process the outcome is always appended before the stage returns), so it
is reconciled from the world and never blindly repeated.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog

from sre_agent.actions.ports import ActionBackend, ActionRequest, ContainerVerifier
from sre_agent.domain.actions import ActionStatus
from sre_agent.domain.alertmanager import expression_from_generator_url
from sre_agent.domain.control import effective_control
from sre_agent.domain.diagnosis import CONTAINER_ACTIONS, ActionKind
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.incident import IncidentStatus, Mode
from sre_agent.domain.policy import (
    Decision,
    GateState,
    Outcome,
    Policy,
    Proposal,
    breaker_should_trip,
    decide,
)
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.pipeline.verify import QueryFn, verify_container_action
from sre_agent.store.ports import EventStore

log = structlog.get_logger("sre_agent.remediate")
RUNNABLE_STATUSES = frozenset({ActionStatus.PROPOSED, ActionStatus.APPROVED})
_SCOPE_REASONS = ("out of scope", "could not be verified", "no target container")


def action_request(row: dict[str, Any], work: IncidentWork) -> ActionRequest:
    labels = dict(work.alerts[0]["labels"]) if work.alerts else {}
    return ActionRequest(
        action_id=row["id"], idempotency_key=row["idempotency_key"], incident_id=work.id,
        kind=ActionKind(row["kind"]), target=row["target"], reason=row["reason"],
        params=dict(row["proposal"].get("params", {})), labels=labels,
        summary=str(work.incident["title"]))


def proposal_of(row: dict[str, Any]) -> Proposal:
    p = row["proposal"]
    return Proposal(kind=ActionKind(row["kind"]), target=row["target"],
                    confidence=float(p.get("confidence", 0.0)),
                    target_verified=bool(p.get("target_verified", False)),
                    target_labels=dict(p.get("target_labels", {})),
                    agreed=bool(p.get("agreed", True)),
                    needs_approval=bool(p.get("needs_approval", False)),
                    approved=row["status"] == ActionStatus.APPROVED)


class RemediateStage:
    name = "remediate"

    def __init__(self, backends: dict[ActionKind, ActionBackend], policy: Policy, *,
                 default_mode: Mode, verifier: ContainerVerifier | None = None,
                 query: QueryFn | None = None, clock: Callable[[], float] = time.time) -> None:
        self.backends = backends
        self.policy = policy
        self.default_mode = default_mode
        self.verifier = verifier
        self.query = query
        self.clock = clock
        self._retried = False

    async def run(self, work: IncidentWork, store: EventStore) -> None:
        # A retry proposed during a pass is handled by the next pass (bounded).
        for _ in range(1 + self.policy.max_attempts):
            self._retried = False
            await self._pass(work, store)
            if not self._retried:
                return

    async def _pass(self, work: IncidentWork, store: EventStore) -> None:
        rows = sorted(await store.list_actions(incident_id=work.id, limit=1000),
                      key=lambda r: r["proposed_at"])
        for row in rows:
            status = row["status"]
            if status == ActionStatus.RUNNING:
                await self._reconcile(row, work, store)
            elif status == ActionStatus.PENDING_APPROVAL:
                await self._expire_if_stale(row, work, store)
            elif status in (ActionStatus.PROPOSED, ActionStatus.APPROVED):
                await self._gate_and_run(row, work, store)
            elif status == ActionStatus.SUCCEEDED and ActionKind(row["kind"]) in (
                    CONTAINER_ACTIONS):
                await self._verify(row, work, store)

    # --- gate ---------------------------------------------------------------------------------
    async def decide(self, row: dict[str, Any], work: IncidentWork, store: EventStore
                     ) -> Decision:
        now = self.clock()
        window = max(self.policy.breaker_window_s, self.policy.cooldown_s, 3600.0)
        hist = await store.gate_history(now, window)
        control = effective_control(work.control, self.default_mode)
        state = GateState(
            mode=control.mode, paused=control.paused, now=now,
            breaker_open=frozenset(hist.breaker_open), last_run=hist.last_run,
            recent_runs=tuple(hist.recent_runs),
            recent_runs_by_target={k: tuple(v) for k, v in hist.recent_runs_by_target.items()},
            track_record=hist.track_record, alertname=row["alertname"])
        return decide(proposal_of(row), self.policy, state)

    async def _gate_and_run(self, row: dict[str, Any], work: IncidentWork,
                            store: EventStore) -> None:
        aid = row["id"]
        kind = ActionKind(row["kind"])
        if work.incident["status"] == IncidentStatus.RESOLVED and kind not in (
                ActionKind.NOTIFY, ActionKind.ESCALATE):
            await store.append([NewEvent(EventType.ACTION_BLOCKED, Actor.AGENT, work.id, {
                "action_id": aid, "reason": "incident already resolved"})])
            return
        if kind not in self.backends:
            await store.append([NewEvent(EventType.ACTION_BLOCKED, Actor.AGENT, work.id, {
                "action_id": aid, "reason": f"no backend configured for {kind}"})])
            return
        decision = await self.decide(row, work, store)
        base = {"action_id": aid, "reason": decision.reason}
        if decision.outcome == Outcome.BLOCKED:
            events = [NewEvent(EventType.ACTION_BLOCKED, Actor.AGENT, work.id, base)]
            if kind in CONTAINER_ACTIONS and any(r in decision.reason for r in _SCOPE_REASONS):
                events.append(NewEvent(EventType.INCIDENT_ESCALATED, Actor.AGENT, work.id, {
                    "reason": f"{kind} on {row['target'] or '?'} refused: {decision.reason}"}))
            await store.append(events)
        elif decision.outcome == Outcome.DRY_RUN:
            await store.append([NewEvent(EventType.ACTION_DRY_RUN, Actor.AGENT, work.id, base)])
        elif decision.outcome == Outcome.NEEDS_APPROVAL:
            expires = self.clock() + self.policy.approval_ttl_s
            await store.append([NewEvent(EventType.ACTION_AWAITING_APPROVAL, Actor.AGENT,
                                         work.id, {**base, "expires_ts": expires})])
        else:
            await self._execute(row, work, store, decision)

    async def _expire_if_stale(self, row: dict[str, Any], work: IncidentWork,
                               store: EventStore) -> None:
        if self.clock() - float(row["updated_ts"]) > self.policy.approval_ttl_s:
            await store.append_guarded(row["id"], frozenset({ActionStatus.PENDING_APPROVAL}), [
                NewEvent(EventType.ACTION_EXPIRED, Actor.SYSTEM, work.id, {
                    "action_id": row["id"], "reason": "approval window passed"})])

    # --- act ----------------------------------------------------------------------------------
    async def _execute(self, row: dict[str, Any], work: IncidentWork, store: EventStore,
                       decision: Decision) -> None:
        request = action_request(row, work)
        started = await store.append_guarded(request.action_id, RUNNABLE_STATUSES, [
            NewEvent(EventType.ACTION_STARTED, Actor.AGENT, work.id, {
                "action_id": request.action_id, "idempotency_key": request.idempotency_key,
                "kind": request.kind.value, "target": request.target,
                "reason": decision.reason})])
        if started is None:
            return  # someone else moved it on (rejected, expired): never run twice
        result = await self.backends[request.kind].execute(request)
        outcome = EventType.ACTION_SUCCEEDED if result.ok else EventType.ACTION_FAILED
        events = [NewEvent(outcome, Actor.AGENT, work.id, {
            "action_id": request.action_id, "result": result.model_dump(mode="json")})]
        if result.ok and request.kind == ActionKind.ESCALATE:
            events.append(NewEvent(EventType.INCIDENT_ESCALATED, Actor.AGENT, work.id,
                                   {"reason": request.reason or "escalated by the agent"}))
        await store.append(events)
        log.info("action_finished", incident_id=work.id, action_id=request.action_id,
                 kind=request.kind.value, target=request.target, ok=result.ok,
                 error=result.error)
        if not result.ok:
            await self._maybe_trip(request.target, store)
        elif request.kind in CONTAINER_ACTIONS:
            refreshed = await store.get_action(request.action_id)
            if refreshed is not None:
                await self._verify(refreshed, work, store)

    async def _reconcile(self, row: dict[str, Any], work: IncidentWork,
                         store: EventStore) -> None:
        request = action_request(row, work)
        backend = self.backends.get(request.kind)
        started = datetime.fromtimestamp(float(row["started_ts"] or row["updated_ts"]), UTC)
        took_effect = await backend.reconcile(request, started) if backend else None
        if took_effect:
            event = NewEvent(EventType.ACTION_SUCCEEDED, Actor.SYSTEM, work.id, {
                "action_id": request.action_id,
                "result": {"ok": True, "reconciled": True,
                           "detail": "the agent stopped mid-action; the world shows it "
                                     "took effect"}})
        else:
            why = ("did not take effect" if took_effect is False
                   else "outcome unknown")
            event = NewEvent(EventType.ACTION_FAILED, Actor.SYSTEM, work.id, {
                "action_id": request.action_id,
                "result": {"ok": False, "reconciled": True,
                           "error": f"the agent stopped mid-action and it {why}; "
                                    "not repeated automatically"}})
        await store.append([event])
        log.warning("action_reconciled", incident_id=work.id, action_id=request.action_id,
                    took_effect=took_effect)
        if took_effect and request.kind in CONTAINER_ACTIONS:
            refreshed = await store.get_action(request.action_id)
            if refreshed is not None:
                await self._verify(refreshed, work, store)
        elif not took_effect:
            await self._maybe_trip(request.target, store)

    # --- verify -------------------------------------------------------------------------------
    async def _verify(self, row: dict[str, Any], work: IncidentWork, store: EventStore) -> None:
        expression = None
        for alert in work.alerts:
            expression = expression_from_generator_url(alert["generator_url"])
            if expression:
                break
        result = await verify_container_action(
            self.verifier, self.query, target=str(row["target"]), expression=expression,
            deadline_s=self.policy.verify_deadline_s)
        event_type = (EventType.VERIFICATION_PASSED if result.ok
                      else EventType.VERIFICATION_FAILED)
        events = [NewEvent(event_type, Actor.AGENT, work.id, {
            "action_id": row["id"], "result": result.model_dump(mode="json")})]
        if not result.ok:
            events.append(NewEvent(EventType.INCIDENT_ESCALATED, Actor.AGENT, work.id, {
                "reason": f"{row['kind']} on {row['target']} did not fix it: {result.error}"}))
            events.extend(self._retry(row, work))
        await store.append(events)
        if not result.ok:
            await self._maybe_trip(row["target"], store)

    def _retry(self, row: dict[str, Any], work: IncidentWork) -> list[NewEvent]:
        """Propose the same action again when policy allows more attempts."""
        prefix, _, attempt_text = str(row["idempotency_key"]).rpartition(":")
        attempt = int(attempt_text) if attempt_text.isdigit() else 1
        if attempt >= self.policy.max_attempts or work.incident["status"] == "resolved":
            return []
        self._retried = True
        return [NewEvent(EventType.ACTION_PROPOSED, Actor.AGENT, work.id, {
            "action_id": "act-" + uuid.uuid4().hex[:16],
            "idempotency_key": f"{prefix}:{attempt + 1}", "kind": row["kind"],
            "target": row["target"], "alertname": row["alertname"],
            "reason": f"retry {attempt + 1}/{self.policy.max_attempts}: {row['reason']}",
            "proposal": row["proposal"]})]

    async def _maybe_trip(self, target: str | None, store: EventStore) -> None:
        if not target:
            return
        now = self.clock()
        hist = await store.gate_history(now, self.policy.breaker_window_s)
        if target in hist.breaker_open:
            return
        failures = hist.failures_by_target.get(target, [])
        if breaker_should_trip(failures, self.policy, now):
            await store.append([NewEvent(EventType.BREAKER_TRIPPED, Actor.AGENT, None, {
                "target": target,
                "reason": f"{len(failures)} failed or ineffective actions within "
                          f"{self.policy.breaker_window_s:.0f}s"})])
            log.warning("breaker_tripped", target=target, failures=len(failures))
