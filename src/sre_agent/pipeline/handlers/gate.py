"""The gate handlers: a proposal (or an approved action) meets the safety gate; an approval
request that outlived its window expires."""

from __future__ import annotations

from typing import Any

from sre_agent.domain.actions import PENDING
from sre_agent.domain.control import effective_control
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import Actor, NewEvent, StoredEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import IncidentStatus
from sre_agent.domain.policy import (
    Decision,
    GateHistory,
    Outcome,
    Policy,
    decide,
    gate_state,
    precheck,
    uses_history,
)
from sre_agent.pipeline.handlers.base import Context, Output, Step, StepKind, proposal_of
from sre_agent.ports import EventStore


async def decide_for(row: dict[str, Any], ctx: Context) -> Decision:
    """The gate's decision on one action row, now."""
    deps = ctx.deps
    now = deps.clock()
    # A notification's decision needs no history: not read for one (a read that grows with
    # every action of the last hour, in a storm).
    hist = (await ctx.store.gate_history(now, deps.policy.history_window_s)
            if uses_history(ActionKind(row["kind"])) else GateHistory())
    control = effective_control(ctx.work.control, deps.default_mode)
    state = gate_state(hist, mode=control.mode, paused=control.paused, now=now,
                       alertname=row["alertname"])
    return decide(proposal_of(row), deps.policy, state)


async def gate(step: Step, row: dict[str, Any], ctx: Context) -> Output:
    """Record the gate's decision; an allowed action becomes an ACT step (nothing is recorded
    until ActionStarted, which the act handler appends guarded)."""
    decision = precheck(ActionKind(row["kind"]),
                        incident_resolved=ctx.work.incident["status"] == IncidentStatus.RESOLVED,
                        available=frozenset(ctx.deps.backends)) or await decide_for(row, ctx)
    aid, incident = row["id"], ctx.work.id
    kind = ActionKind(row["kind"])
    base = {"action_id": aid, "reason": decision.reason, "code": decision.code.value}
    events: list[NewEvent] = []
    if decision.outcome == Outcome.EXECUTE:
        return [Step(StepKind.ACT, aid, decision)]
    if decision.outcome == Outcome.BLOCKED:
        events.append(NewEvent.of(ev.ActionBlocked(**base), Actor.AGENT, incident))
        if decision.escalates(kind) and not _escalated(ctx):
            ctx.work.incident["status"] = IncidentStatus.ESCALATED  # once per incident
            events.append(NewEvent.of(ev.IncidentEscalated(
                reason=f"{kind} on {row['target'] or '?'} refused: {decision.reason}"),
                Actor.AGENT, incident))
    elif decision.outcome == Outcome.DRY_RUN:
        events.append(NewEvent.of(ev.ActionDryRun(**base), Actor.AGENT, incident))
    else:
        expires = ctx.deps.clock() + ctx.deps.policy.approval_ttl_s
        events.append(NewEvent.of(ev.ActionAwaitingApproval(**base, expires_ts=expires),
                                  Actor.AGENT, incident))
    return list(await ctx.store.append(events))


def _escalated(ctx: Context) -> bool:
    return bool(ctx.work.incident["status"] == IncidentStatus.ESCALATED)


async def expire_if_stale(store: EventStore, row: dict[str, Any], policy: Policy, now: float,
                          actor: str, *, incident_resolved: bool = False
                          ) -> list[StoredEvent] | None:
    """Expire a pending approval past its window, or at once when its incident is resolved
    (guarded: a decision that won the race stands). None when it may still be decided.
    Shared by the gate and the approve command, so the rule is written once."""
    if incident_resolved:
        reason = "incident resolved before a decision"
    elif policy.approval_expired(float(row["updated_ts"]), now):
        reason = "approval window passed"
    else:
        return None
    stored = await store.append_guarded(row["id"], PENDING, [NewEvent.of(
        ev.ActionExpired(action_id=row["id"], reason=reason), actor, row["incident_id"])])
    return stored or []


async def expire(step: Step, row: dict[str, Any], ctx: Context) -> Output:
    resolved = ctx.work.incident["status"] == IncidentStatus.RESOLVED
    stored = await expire_if_stale(ctx.store, row, ctx.deps.policy, ctx.deps.clock(),
                                   Actor.SYSTEM, incident_resolved=resolved)
    return list(stored or [])
