"""The action lifecycle: statuses, and the one function that maps an event to a transition.

``action_transition`` is the lifecycle rule; the SQL projection and the post-incident report
both apply it (neither re-derives which event means what).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sre_agent.domain.events import EventType, StoredEvent
from sre_agent.domain.events import payloads as ev


class ActionStatus(StrEnum):
    PROPOSED = "proposed"
    PENDING_APPROVAL = "pending_approval"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    BLOCKED = "blocked"
    DRY_RUN = "dry_run"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    VERIFIED = "verified"
    VERIFICATION_FAILED = "verification_failed"
    VERIFICATION_INCONCLUSIVE = "verification_inconclusive"


STATUS_BY_EVENT: dict[str, ActionStatus] = {
    EventType.ACTION_PROPOSED: ActionStatus.PROPOSED,
    EventType.ACTION_AWAITING_APPROVAL: ActionStatus.PENDING_APPROVAL,
    EventType.ACTION_APPROVED: ActionStatus.APPROVED,
    EventType.ACTION_REJECTED: ActionStatus.REJECTED,
    EventType.ACTION_EXPIRED: ActionStatus.EXPIRED,
    EventType.ACTION_BLOCKED: ActionStatus.BLOCKED,
    EventType.ACTION_DRY_RUN: ActionStatus.DRY_RUN,
    EventType.ACTION_STARTED: ActionStatus.RUNNING,
    EventType.ACTION_SUCCEEDED: ActionStatus.SUCCEEDED,
    EventType.ACTION_FAILED: ActionStatus.FAILED,
    EventType.VERIFICATION_PASSED: ActionStatus.VERIFIED,
    EventType.VERIFICATION_FAILED: ActionStatus.VERIFICATION_FAILED,
    EventType.VERIFICATION_INCONCLUSIVE: ActionStatus.VERIFICATION_INCONCLUSIVE,
}

# Statuses in which the gate may still run the action.
RUNNABLE = frozenset({ActionStatus.PROPOSED, ActionStatus.APPROVED})
# Statuses that only an operator (or the approval window) moves on.
PENDING = frozenset({ActionStatus.PENDING_APPROVAL})
# Statuses that count as "it ran" for cooldowns and rate limits.
EXECUTED = frozenset({ActionStatus.RUNNING, ActionStatus.SUCCEEDED, ActionStatus.FAILED,
                      ActionStatus.VERIFIED, ActionStatus.VERIFICATION_FAILED,
                      ActionStatus.VERIFICATION_INCONCLUSIVE})
# Statuses that count toward a target's circuit breaker. An inconclusive verification is not
# a failure: the action may well have worked, we could not tell.
FAILURES = frozenset({ActionStatus.FAILED, ActionStatus.VERIFICATION_FAILED})
# Gate and operator decisions (what the report calls the "decision" on an action).
DECISIONS = frozenset({ActionStatus.PENDING_APPROVAL, ActionStatus.APPROVED,
                       ActionStatus.REJECTED, ActionStatus.EXPIRED, ActionStatus.BLOCKED,
                       ActionStatus.DRY_RUN})
_VERIFICATIONS = (ev.VerificationPassed, ev.VerificationFailed, ev.VerificationInconclusive)


@dataclass(frozen=True)
class ActionTransition:
    """What one event changes about one action."""

    action_id: str
    status: ActionStatus
    at: str
    actor: str
    reason: str | None = None  # the decision or start reason, when the event carries one
    decided_by: str | None = None  # the operator who approved or rejected
    started: bool = False
    result: dict[str, Any] | None = None  # the action's outcome (ActionSucceeded/Failed)
    verification: dict[str, Any] | None = None
    # The track record counts finished attempts only: an action still being verified is
    # neither a success nor a failure yet.
    attempt: bool = False
    success: bool = False


def action_transition(event: StoredEvent) -> ActionTransition | None:
    """The lifecycle step ``event`` makes, or None when it is not about an action."""
    status = STATUS_BY_EVENT.get(event.type)
    p = event.payload
    if status is None or not isinstance(p, ev.ActionEvent) or not p.action_id:
        return None
    reason = p.reason if isinstance(p, ev.ActionDecided) and "reason" in event.data else None
    finished = isinstance(p, ev.ActionSucceeded | ev.ActionFailed)
    verified = isinstance(p, _VERIFICATIONS)
    return ActionTransition(
        action_id=p.action_id, status=status, at=event.at, actor=event.actor, reason=reason,
        decided_by=event.actor if isinstance(p, ev.ActionApproved | ev.ActionRejected) else None,
        started=isinstance(p, ev.ActionStarted),
        result=dict(event.data.get("result") or {}) if finished else None,
        verification=dict(event.data.get("result") or {}) if verified else None,
        attempt=verified or isinstance(p, ev.ActionFailed),
        success=isinstance(p, ev.VerificationPassed))
