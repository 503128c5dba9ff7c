"""Action lifecycle statuses, projected from the Action* events."""

from __future__ import annotations

from enum import StrEnum

from sre_agent.domain.events import EventType


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
}

# Statuses in which the gate may still run the action.
RUNNABLE = frozenset({ActionStatus.PROPOSED, ActionStatus.APPROVED})
# Statuses that count as "it ran" for cooldowns and rate limits.
EXECUTED = frozenset({ActionStatus.RUNNING, ActionStatus.SUCCEEDED, ActionStatus.FAILED,
                      ActionStatus.VERIFIED, ActionStatus.VERIFICATION_FAILED})
# Statuses that count toward a target's circuit breaker.
FAILURES = frozenset({ActionStatus.FAILED, ActionStatus.VERIFICATION_FAILED})
