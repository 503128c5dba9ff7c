"""The safety gate: a pure function of (proposal, policy, state) -> decision.

Order of checks (the first that applies decides):
 1. kind not allowlisted                     -> blocked
 2. mode observe                             -> blocked (analyse only)
 3. container action without a verified, in-scope target -> blocked
 4. paused (kill switch)                     -> blocked
 5. circuit breaker open for the target      -> blocked
 6. cooldown for (kind, target)              -> blocked
 7. rate limit (global, per target, per hour) -> blocked
 8. mode dry_run                             -> dry_run (recorded, not run)
 9. needs an operator (approval mode, low confidence, an LLM alternative to a matched
    runbook, disagreement, poor track record)
                                             -> needs_approval, unless already approved
10. otherwise                                -> execute

notify and escalate only tell people: in approval mode they run without an approval, but they
still obey the allowlist, observe, pause and dry_run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from sre_agent.domain.diagnosis import CONTAINER_ACTIONS, ActionKind
from sre_agent.domain.incident import Mode

SAFE_KINDS = frozenset({ActionKind.NOTIFY, ActionKind.ESCALATE})


class Outcome(StrEnum):
    EXECUTE = "execute"
    NEEDS_APPROVAL = "needs_approval"
    DRY_RUN = "dry_run"
    BLOCKED = "blocked"


class ReasonCode(StrEnum):
    """Why the gate decided what it did; callers branch on the code, never on the text."""

    NOT_ALLOWLISTED = "not_allowlisted"
    OBSERVE_MODE = "observe_mode"
    NO_TARGET = "no_target"
    TARGET_UNVERIFIED = "target_unverified"
    OUT_OF_SCOPE = "out_of_scope"
    PAUSED = "paused"
    BREAKER_OPEN = "breaker_open"
    COOLDOWN = "cooldown"
    RATE_LIMIT = "rate_limit"
    RATE_LIMIT_TARGET = "rate_limit_target"
    DRY_RUN = "dry_run"
    APPROVED = "approved"
    SAFE_KIND = "safe_kind"
    APPROVAL_MODE = "approval_mode"
    LOW_CONFIDENCE = "low_confidence"
    DISAGREEMENT = "disagreement"
    LLM_ALTERNATIVE = "llm_alternative"  # the combined engine: LLM overrode a matched runbook
    POOR_TRACK_RECORD = "poor_track_record"
    AUTONOMOUS = "autonomous"
    # Refusals before the gate proper runs.
    INCIDENT_RESOLVED = "incident_resolved"
    NO_BACKEND = "no_backend"


# A container action refused for these reasons cannot be fixed by waiting: a human must look.
# Refusals a human must hear about: the agent cannot act on its own (scope), or something an
# operator set or the agent learned stops it (kill switch, breaker, rate limits). Cooldown,
# observe, dry_run and the allowlist are routine: the operator chose them.
ESCALATING_CODES = frozenset({ReasonCode.NO_TARGET, ReasonCode.TARGET_UNVERIFIED,
                              ReasonCode.OUT_OF_SCOPE, ReasonCode.PAUSED,
                              ReasonCode.BREAKER_OPEN, ReasonCode.RATE_LIMIT,
                              ReasonCode.RATE_LIMIT_TARGET})


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    code: ReasonCode
    reason: str

    def escalates(self, kind: ActionKind) -> bool:
        """Whether refusing ``kind`` for this reason should escalate the incident."""
        return (self.outcome == Outcome.BLOCKED and kind in CONTAINER_ACTIONS
                and self.code in ESCALATING_CODES)


@dataclass(frozen=True)
class Policy:
    allowlist: frozenset[ActionKind] = frozenset(ActionKind)
    scope_label: str = "sre-agent.managed=true"
    cooldown_s: float = 300.0
    max_actions_per_hour: int = 20
    max_actions_per_target_per_hour: int = 3
    min_confidence_autonomous: float = 0.6
    require_agreement: bool = False
    breaker_failures: int = 3
    breaker_window_s: float = 3600.0
    approval_ttl_s: float = 3600.0
    verify_deadline_s: float = 60.0
    # After a restart/start the container must stay up this long (same start, restart count
    # unchanged): a crash loop that is "running" for a second is not a recovery.
    verify_stable_s: float = 30.0
    min_attempts_for_stats: int = 3
    min_success_rate: float = 0.5
    max_attempts: int = 1  # per (incident, action, target); >1 retries after failed verification

    @property
    def history_window_s(self) -> float:
        """How far back the gate looks: breakers, cooldowns and the hourly rate limits."""
        return max(self.breaker_window_s, self.cooldown_s, 3600.0)

    def approval_expired(self, pending_since_ts: float, now: float) -> bool:
        """An approval request older than ``approval_ttl_s`` can no longer be approved."""
        return now - pending_since_ts > self.approval_ttl_s

    @property
    def scope(self) -> tuple[str, str]:
        key, _, value = self.scope_label.partition("=")
        return key, value


@dataclass(frozen=True)
class Proposal:
    kind: ActionKind
    target: str | None
    confidence: float = 0.5
    target_verified: bool = False
    target_labels: dict[str, str] = field(default_factory=dict)
    agreed: bool = True  # rules and LLM proposed the same action (True when only one engine)
    needs_approval: bool = False  # combined engine: an LLM alternative to a matched runbook
    approved: bool = False  # an operator approved this very action


@dataclass(frozen=True)
class GateState:
    mode: Mode
    paused: bool = False
    now: float = 0.0
    breaker_open: frozenset[str] = frozenset()
    # (kind, target) -> time of the last execution started
    last_run: dict[tuple[str, str], float] = field(default_factory=dict)
    # start times of executed (not dry-run) actions in the last hour, overall and per target
    recent_runs: tuple[float, ...] = ()
    recent_runs_by_target: dict[str, tuple[float, ...]] = field(default_factory=dict)
    # (alertname, kind) -> (attempts, verified successes)
    track_record: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    alertname: str = ""


@dataclass
class GateHistory:
    """What the gate needs from the past: runs, failures, open breakers, track records."""

    last_run: dict[tuple[str, str], float] = field(default_factory=dict)
    recent_runs: list[float] = field(default_factory=list)
    recent_runs_by_target: dict[str, list[float]] = field(default_factory=dict)
    failures_by_target: dict[str, list[float]] = field(default_factory=dict)
    breaker_open: set[str] = field(default_factory=set)
    track_record: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)



def gate_state(hist: GateHistory, *, mode: Mode, paused: bool, now: float,
               alertname: str) -> GateState:
    """The gate's view of the present, from the store's history and the operator control."""
    return GateState(
        mode=mode, paused=paused, now=now, breaker_open=frozenset(hist.breaker_open),
        last_run=hist.last_run, recent_runs=tuple(hist.recent_runs),
        recent_runs_by_target={k: tuple(v) for k, v in hist.recent_runs_by_target.items()},
        track_record=hist.track_record, alertname=alertname)


def precheck(kind: ActionKind, *, incident_resolved: bool,
             available: frozenset[ActionKind] | None) -> Decision | None:
    """Refusals before the gate proper: nothing left to fix, or nothing to act with."""
    if incident_resolved and kind not in SAFE_KINDS:
        return Decision(Outcome.BLOCKED, ReasonCode.INCIDENT_RESOLVED,
                        "incident already resolved")
    if available is not None and kind not in available:
        return Decision(Outcome.BLOCKED, ReasonCode.NO_BACKEND, f"no backend configured for {kind}")
    return None


def in_scope(labels: dict[str, str], policy: Policy) -> bool:
    key, value = policy.scope
    return labels.get(key) == value


def uses_history(kind: ActionKind) -> bool:
    """Whether the gate looks at the past (breakers, cooldowns, rate limits, track record)
    for this kind of action: notifications never wait for any of it."""
    return kind not in SAFE_KINDS


def decide(p: Proposal, policy: Policy, s: GateState) -> Decision:
    blocked = Outcome.BLOCKED
    if p.kind not in policy.allowlist:
        return Decision(blocked, ReasonCode.NOT_ALLOWLISTED,
                        f"action kind {p.kind} is not in the allowlist")
    if s.mode == Mode.OBSERVE:
        return Decision(blocked, ReasonCode.OBSERVE_MODE, "observe mode: analysis only")
    if p.kind in CONTAINER_ACTIONS:
        if not p.target:
            return Decision(blocked, ReasonCode.NO_TARGET, "no target container resolved")
        if not p.target_verified:
            return Decision(blocked, ReasonCode.TARGET_UNVERIFIED,
                            f"container {p.target} could not be verified with Docker")
        if not in_scope(p.target_labels, policy):
            return Decision(blocked, ReasonCode.OUT_OF_SCOPE,
                            f"container {p.target} is out of scope: it lacks the label "
                            f"{policy.scope_label}")
    if s.paused:
        return Decision(blocked, ReasonCode.PAUSED, "paused: the kill switch is on")
    target = p.target or ""
    if uses_history(p.kind):
        if target in s.breaker_open:
            return Decision(blocked, ReasonCode.BREAKER_OPEN,
                            f"circuit breaker open for {target}: operator reset needed")
        last = s.last_run.get((p.kind.value, target))
        if last is not None and s.now - last < policy.cooldown_s:
            return Decision(blocked, ReasonCode.COOLDOWN,
                            f"cooldown: {p.kind} on {target or 'this alert'} ran "
                            f"{s.now - last:.0f}s ago (cooldown {policy.cooldown_s:.0f}s)")
        hour = s.now - 3600
        if sum(1 for t in s.recent_runs if t > hour) >= policy.max_actions_per_hour:
            return Decision(blocked, ReasonCode.RATE_LIMIT,
                            f"rate limit: {policy.max_actions_per_hour} actions per hour")
        per_target = s.recent_runs_by_target.get(target, ())
        if target and sum(1 for t in per_target if t > hour) >= (
                policy.max_actions_per_target_per_hour):
            return Decision(blocked, ReasonCode.RATE_LIMIT_TARGET,
                            f"rate limit: {policy.max_actions_per_target_per_hour} "
                            f"actions per hour on {target}")
    if s.mode == Mode.DRY_RUN:
        return Decision(Outcome.DRY_RUN, ReasonCode.DRY_RUN,
                        "dry_run mode: recorded, not executed")
    if p.approved:
        return Decision(Outcome.EXECUTE, ReasonCode.APPROVED, "approved by an operator")
    if p.kind in SAFE_KINDS:
        return Decision(Outcome.EXECUTE, ReasonCode.SAFE_KIND,
                        "notification: allowed without approval")
    if s.mode == Mode.APPROVAL:
        return Decision(Outcome.NEEDS_APPROVAL, ReasonCode.APPROVAL_MODE,
                        "approval mode: an operator must approve")
    # autonomous
    if p.confidence < policy.min_confidence_autonomous:
        return Decision(Outcome.NEEDS_APPROVAL, ReasonCode.LOW_CONFIDENCE,
                        f"confidence {p.confidence:.2f} below "
                        f"{policy.min_confidence_autonomous:.2f}")
    if p.needs_approval:
        return Decision(Outcome.NEEDS_APPROVAL, ReasonCode.LLM_ALTERNATIVE,
                        "the LLM's alternative to a matched runbook: an operator must approve")
    if policy.require_agreement and not p.agreed:
        return Decision(Outcome.NEEDS_APPROVAL, ReasonCode.DISAGREEMENT,
                        "rules and LLM disagree on this action")
    attempts, successes = s.track_record.get((s.alertname, p.kind.value), (0, 0))
    if attempts >= policy.min_attempts_for_stats and successes / attempts < (
            policy.min_success_rate):
        return Decision(Outcome.NEEDS_APPROVAL, ReasonCode.POOR_TRACK_RECORD,
                        f"{p.kind} has fixed {s.alertname} in {successes}/{attempts} attempts: "
                        "below the success threshold")
    return Decision(Outcome.EXECUTE, ReasonCode.AUTONOMOUS, "autonomous: all checks passed")


def breaker_should_trip(failure_times: list[float], policy: Policy, now: float) -> bool:
    window = [t for t in failure_times if now - t <= policy.breaker_window_s]
    return len(window) >= policy.breaker_failures
