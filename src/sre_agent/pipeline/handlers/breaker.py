"""The breaker handler: a failed or ineffective action may trip its target's circuit breaker."""

from __future__ import annotations

from typing import Any

from sre_agent.domain.events import Actor, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.policy import breaker_should_trip
from sre_agent.pipeline.handlers.base import Context, Output, Step, log


async def breaker(step: Step, row: dict[str, Any], ctx: Context) -> Output:
    target = row["target"]
    if not target:
        return []
    policy, now = ctx.deps.policy, ctx.deps.clock()
    hist = await ctx.store.gate_history(now, policy.breaker_window_s)
    if target in hist.breaker_open:
        return []
    failures = hist.failures_by_target.get(target, [])
    if not breaker_should_trip(failures, policy, now):
        return []
    stored = await ctx.store.append([NewEvent.of(ev.BreakerTripped(
        target=target, reason=f"{len(failures)} failed or ineffective actions within "
                              f"{policy.breaker_window_s:.0f}s"), Actor.AGENT, None)])
    log.warning("breaker_tripped", target=target, failures=len(failures))
    return list(stored)
