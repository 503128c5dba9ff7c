"""The act handlers: run an allowed action exactly once; reconcile one left running.

Exactly once: ``ActionStarted`` is appended guarded (only while the action is still runnable)
and is durable before the backend is called. An action found ``running`` when an incident is
processed can only be left over from a process that died mid-action (within one process the
outcome is always appended before the handler returns), so it is reconciled from the world and
never blindly repeated.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sre_agent.domain.actions import RUNNABLE
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import Actor, NewEvent, ResultData
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.results import ReconcileResult, ReconcileStatus
from sre_agent.pipeline.handlers.base import Context, Output, Step, action_request, log


async def act(step: Step, row: dict[str, Any], ctx: Context) -> Output:
    request = action_request(row, ctx.work)
    reason = step.decision.reason if step.decision else ""
    started = await ctx.store.append_guarded(request.action_id, RUNNABLE, [NewEvent.of(
        ev.ActionStarted(action_id=request.action_id, idempotency_key=request.idempotency_key,
                         kind=request.kind.value, target=request.target, reason=reason),
        Actor.AGENT, ctx.work.id)])
    if started is None:
        return []  # someone else moved it on (rejected, expired): never run twice
    result = await ctx.deps.backends[request.kind].execute(request)
    outcome = ev.ActionSucceeded if result.ok else ev.ActionFailed
    events = [NewEvent.of(outcome(action_id=request.action_id,
                                  result=ResultData.model_validate(
                                      result.model_dump(mode="json"))),
                          Actor.AGENT, ctx.work.id)]
    if result.ok and request.kind == ActionKind.ESCALATE:
        events.append(NewEvent.of(ev.IncidentEscalated(
            reason=request.reason or "escalated by the agent"), Actor.AGENT, ctx.work.id))
    stored = await ctx.store.append(events)
    log.info("action_finished", incident_id=ctx.work.id, action_id=request.action_id,
             kind=request.kind.value, target=request.target, status=result.status.value,
             error=result.error)
    return [*started, *stored]


async def reconcile(step: Step, row: dict[str, Any], ctx: Context) -> Output:
    request = action_request(row, ctx.work)
    backend = ctx.deps.backends.get(request.kind)
    began = datetime.fromtimestamp(float(row["started_ts"] or row["updated_ts"]), UTC)
    found = (await backend.reconcile(request, began) if backend is not None
             else ReconcileResult(status=ReconcileStatus.UNKNOWN,
                                  reason=f"no backend configured for {request.kind}"))
    if found.status == ReconcileStatus.TOOK_EFFECT:
        event = NewEvent.of(ev.ActionSucceeded(action_id=request.action_id, result=ResultData(
            ok=True, status="succeeded", reconciled=True, reconcile=found.status.value,
            detail="the agent stopped mid-action; the world shows it took effect")),
            Actor.SYSTEM, ctx.work.id)
    else:
        why = ("did not take effect" if found.status == ReconcileStatus.NO_EFFECT
               else "outcome unknown")
        event = NewEvent.of(ev.ActionFailed(action_id=request.action_id, result=ResultData(
            ok=False, status="failed", reconciled=True, reconcile=found.status.value,
            error=f"the agent stopped mid-action and it {why}; not repeated automatically",
            reason=found.reason)), Actor.SYSTEM, ctx.work.id)
    stored = await ctx.store.append([event])
    log.warning("action_reconciled", incident_id=ctx.work.id, action_id=request.action_id,
                status=found.status.value, reason=found.reason)
    return list(stored)
