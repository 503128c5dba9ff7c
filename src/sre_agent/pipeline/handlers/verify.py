"""The verify handler: a container action that succeeded must also have fixed the alert.

passed -> VerificationPassed. failed -> VerificationFailed, the incident escalates, a retry is
proposed while policy allows more attempts, and the failure counts toward the target's
breaker. inconclusive (a check could not tell, e.g. Prometheus unreachable) ->
VerificationInconclusive and the incident escalates for a human to look; it is neither a pass
nor a failure: no retry, no breaker count, and the track record counts it as an attempt
without a success.
"""

from __future__ import annotations

import uuid
from typing import Any

from sre_agent.domain.alertmanager import expression_from_generator_url
from sre_agent.domain.diagnosis import CONTAINER_ACTIONS, ActionKind
from sre_agent.domain.events import Actor, NewEvent, ResultData
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import IncidentStatus
from sre_agent.domain.results import VerificationStatus
from sre_agent.pipeline.handlers.base import Context, Output, Step
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.pipeline.verify import verify_container_action

_EVENT = {VerificationStatus.PASSED: ev.VerificationPassed,
          VerificationStatus.FAILED: ev.VerificationFailed,
          VerificationStatus.INCONCLUSIVE: ev.VerificationInconclusive}


def _expression(work: IncidentWork) -> str | None:
    for alert in work.alerts:
        expression = expression_from_generator_url(alert["generator_url"])
        if expression:
            return expression
    return None


async def verify(step: Step, row: dict[str, Any], ctx: Context) -> Output:
    if ActionKind(row["kind"]) not in CONTAINER_ACTIONS:
        return []
    deps = ctx.deps
    result = await verify_container_action(
        deps.verifier, deps.query, target=str(row["target"]), expression=_expression(ctx.work),
        deadline_s=deps.policy.verify_deadline_s, stable_s=deps.policy.verify_stable_s)
    incident = ctx.work.id
    events = [NewEvent.of(_EVENT[result.status](action_id=row["id"],
                                                result=ResultData.model_validate(
                                                    result.model_dump(mode="json"))),
                          Actor.AGENT, incident)]
    if result.status == VerificationStatus.FAILED:
        events.append(NewEvent.of(ev.IncidentEscalated(
            reason=f"{row['kind']} on {row['target']} did not fix it: {result.error}"),
            Actor.AGENT, incident))
        events.extend(retry_proposal(row, ctx))
    elif result.status == VerificationStatus.INCONCLUSIVE:
        events.append(NewEvent.of(ev.IncidentEscalated(
            reason=f"{row['kind']} on {row['target']} could not be verified: {result.error}"),
            Actor.AGENT, incident))
    return list(await ctx.store.append(events))


def retry_proposal(row: dict[str, Any], ctx: Context) -> list[NewEvent]:
    """Propose the same action again when policy allows more attempts."""
    policy = ctx.deps.policy
    prefix, _, attempt_text = str(row["idempotency_key"]).rpartition(":")
    attempt = int(attempt_text) if attempt_text.isdigit() else 1
    if attempt >= policy.max_attempts or ctx.work.incident["status"] == IncidentStatus.RESOLVED:
        return []
    return [NewEvent.of(ev.ActionProposed(
        action_id="act-" + uuid.uuid4().hex[:16], idempotency_key=f"{prefix}:{attempt + 1}",
        kind=row["kind"], target=row["target"], alertname=row["alertname"],
        reason=f"retry {attempt + 1}/{policy.max_attempts}: {row['reason']}",
        proposal=row["proposal"]), Actor.AGENT, ctx.work.id)]
