"""The action lifecycle: statuses, and the one function that maps an event to a transition.

``action_transition`` is the lifecycle rule; the SQL projection and the post-incident report
both apply it (neither re-derives which event means what).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sre_agent.domain.events import EventType, StoredEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.policy import SAFE_KINDS, GateHistory


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
# The only statuses ``gate_history_of`` looks at: a store may leave every other row out.
HISTORY_STATUSES = EXECUTED | FAILURES
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


def new_action_row(event: StoredEvent, p: ev.ActionProposed, ts: float) -> dict[str, Any]:
    """The projected row a proposal starts (``ts`` is the event's time)."""
    return {"id": p.action_id, "incident_id": event.incident_id, "kind": p.kind,
            "target": p.target, "alertname": p.alertname, "reason": p.reason,
            "status": ActionStatus.PROPOSED, "proposal": p.proposal,
            "idempotency_key": p.idempotency_key, "proposed_at": event.at,
            "updated_at": event.at, "updated_ts": ts}


def action_changes(step: ActionTransition, ts: float,
                   current_result: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The projected action row's new column values after ``step`` (``ts`` is the event's
    time; ``current_result`` reads the row's result, needed only when a verification lands)."""
    changes: dict[str, Any] = {"status": step.status, "updated_at": step.at, "updated_ts": ts}
    if step.reason is not None:
        changes["decision_reason"] = step.reason
    if step.decided_by is not None:
        changes["decided_by"] = step.decided_by
    if step.started:
        changes["started_ts"] = ts
    if step.result is not None:
        changes["finished_ts"] = ts
        changes["result"] = step.result
    if step.verification is not None:
        changes["result"] = {**current_result(), "verification": step.verification}
    return changes


def history_since(now: float, window_s: float) -> float:
    """The oldest ``updated_ts`` of the action rows ``gate_history_of`` needs (hourly rate
    limits look back one hour even when the window is shorter)."""
    return now - max(window_s, 3600.0)


def gate_history_of(rows: Iterable[Mapping[str, Any]], now: float, window_s: float, *,
                    breaker_open: set[str],
                    track_record: dict[tuple[str, str], tuple[int, int]]) -> GateHistory:
    """What the gate needs from the past, from the projected action rows changed since
    ``history_since(now, window_s)`` (the store selects them; this is the rule)."""
    hist = GateHistory(breaker_open=breaker_open, track_record=track_record)
    for r in rows:
        target = r["target"] or ""
        started = r["started_ts"]
        if r["status"] in EXECUTED and started is not None:
            key = (r["kind"], target)
            hist.last_run[key] = max(hist.last_run.get(key, 0.0), started)
            # Notifications never count toward the hourly limits on remediation: twenty
            # escalations must not rate-limit the next restart.
            if now - started <= 3600 and r["kind"] not in SAFE_KINDS:
                hist.recent_runs.append(started)
                hist.recent_runs_by_target.setdefault(target, []).append(started)
        if r["status"] in FAILURES and now - r["updated_ts"] <= window_s:
            hist.failures_by_target.setdefault(target, []).append(r["updated_ts"])
    return hist
