"""The gate: table tests of each rule, and property tests that no input sequence escapes it."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sre_agent.domain.diagnosis import CONTAINER_ACTIONS, ActionKind
from sre_agent.domain.incident import Mode
from sre_agent.domain.policy import (
    SAFE_KINDS,
    GateState,
    Outcome,
    Policy,
    Proposal,
    breaker_should_trip,
    decide,
)

MANAGED = {"sre-agent.managed": "true"}
POLICY = Policy()


def restart(**kw: object) -> Proposal:
    base: dict[str, object] = {"kind": ActionKind.RESTART_CONTAINER, "target": "web",
                               "confidence": 0.9, "target_verified": True,
                               "target_labels": MANAGED}
    base.update(kw)
    return Proposal(**base)  # type: ignore[arg-type]


def state(mode: Mode = Mode.AUTONOMOUS, **kw: object) -> GateState:
    return GateState(mode=mode, now=10_000.0, **kw)  # type: ignore[arg-type]


def test_autonomous_in_scope_restart_executes() -> None:
    assert decide(restart(), POLICY, state()).outcome == Outcome.EXECUTE


def test_approval_mode_needs_approval_then_executes_when_approved() -> None:
    assert decide(restart(), POLICY, state(Mode.APPROVAL)).outcome == Outcome.NEEDS_APPROVAL
    assert decide(restart(approved=True), POLICY, state(Mode.APPROVAL)).outcome == (
        Outcome.EXECUTE)


def test_observe_blocks_everything_and_dry_run_records() -> None:
    for kind in ActionKind:
        d = decide(restart(kind=kind), POLICY, state(Mode.OBSERVE))
        assert d.outcome == Outcome.BLOCKED and "observe" in d.reason
    assert decide(restart(), POLICY, state(Mode.DRY_RUN)).outcome == Outcome.DRY_RUN


def test_scope_label_missing_or_wrong_blocks() -> None:
    for labels in ({}, {"sre-agent.managed": "false"}, {"other": "true"}):
        d = decide(restart(target_labels=labels), POLICY, state())
        assert d.outcome == Outcome.BLOCKED and "out of scope" in d.reason


def test_unverified_or_missing_target_blocks() -> None:
    assert "verified" in decide(restart(target_verified=False), POLICY, state()).reason
    assert "no target" in decide(restart(target=None), POLICY, state()).reason


def test_allowlist() -> None:
    policy = Policy(allowlist=frozenset({ActionKind.NOTIFY}))
    d = decide(restart(), policy, state())
    assert d.outcome == Outcome.BLOCKED and "allowlist" in d.reason


def test_pause_blocks_even_approved_and_notifications() -> None:
    assert decide(restart(approved=True), POLICY, state(paused=True)).outcome == Outcome.BLOCKED
    notify = Proposal(kind=ActionKind.NOTIFY, target=None)
    assert decide(notify, POLICY, state(paused=True)).outcome == Outcome.BLOCKED


def test_breaker_cooldown_and_rate_limits() -> None:
    assert "breaker" in decide(restart(), POLICY, state(breaker_open=frozenset({"web"}))).reason
    recent = {("restart_container", "web"): 10_000.0 - 60}
    assert "cooldown" in decide(restart(), POLICY, state(last_run=recent)).reason
    old = {("restart_container", "web"): 10_000.0 - 301}
    assert decide(restart(), POLICY, state(last_run=old)).outcome == Outcome.EXECUTE
    many = tuple(10_000.0 - i for i in range(20))
    assert "rate limit" in decide(restart(), POLICY, state(recent_runs=many)).reason
    per = {"web": (9_990.0, 9_980.0, 9_970.0)}
    assert "on web" in decide(restart(), POLICY, state(recent_runs_by_target=per)).reason
    # an approval does not override a cooldown or a breaker
    assert decide(restart(approved=True), POLICY, state(last_run=recent)).outcome == (
        Outcome.BLOCKED)


def test_autonomous_falls_back_to_approval() -> None:
    low = decide(restart(confidence=0.3), POLICY, state())
    assert low.outcome == Outcome.NEEDS_APPROVAL and "confidence" in low.reason
    strict = Policy(require_agreement=True)
    assert decide(restart(agreed=False), strict, state()).outcome == Outcome.NEEDS_APPROVAL
    poor = state(track_record={("TargetDown", "restart_container"): (4, 1)},
                 alertname="TargetDown")
    d = decide(restart(), POLICY, poor)
    assert d.outcome == Outcome.NEEDS_APPROVAL and "1/4" in d.reason


def test_notifications_run_in_approval_mode() -> None:
    for kind in SAFE_KINDS:
        assert decide(Proposal(kind=kind, target=None), POLICY, state(Mode.APPROVAL)).outcome == (
            Outcome.EXECUTE)


def test_breaker_trips_on_failures_within_window() -> None:
    assert breaker_should_trip([100.0, 200.0, 300.0], POLICY, now=400.0)
    assert not breaker_should_trip([100.0, 200.0], POLICY, now=400.0)
    assert not breaker_should_trip([0.0, 1.0, 2.0], POLICY, now=10_000.0)


# --- properties -------------------------------------------------------------------------------
labels_st = st.dictionaries(st.sampled_from(["sre-agent.managed", "app", "x"]),
                            st.sampled_from(["true", "false", "", "TRUE"]), max_size=3)
proposal_st = st.builds(
    Proposal, kind=st.sampled_from(list(ActionKind)),
    target=st.one_of(st.none(), st.sampled_from(["web", "db", "cache"])),
    confidence=st.floats(0, 1), target_verified=st.booleans(), target_labels=labels_st,
    agreed=st.booleans(), approved=st.booleans())
state_st = st.builds(
    GateState, mode=st.sampled_from(list(Mode)), paused=st.booleans(),
    now=st.floats(0, 1e6), breaker_open=st.frozensets(st.sampled_from(["web", "db"])),
    recent_runs=st.lists(st.floats(0, 1e6), max_size=30).map(tuple))
policy_st = st.builds(
    Policy, allowlist=st.frozensets(st.sampled_from(list(ActionKind))),
    cooldown_s=st.floats(0, 1000), max_actions_per_hour=st.integers(0, 50),
    min_confidence_autonomous=st.floats(0, 1), require_agreement=st.booleans())


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(proposal_st, state_st), min_size=1, max_size=20), policy_st)
def test_no_sequence_executes_outside_scope_allowlist_or_while_paused(
    steps: list[tuple[Proposal, GateState]], policy: Policy,
) -> None:
    for proposal, s in steps:
        d = decide(proposal, policy, s)
        if d.outcome != Outcome.EXECUTE:
            continue
        assert proposal.kind in policy.allowlist
        assert not s.paused
        assert s.mode in (Mode.APPROVAL, Mode.AUTONOMOUS)
        if proposal.kind in CONTAINER_ACTIONS:
            assert proposal.target and proposal.target_verified
            assert proposal.target_labels.get("sre-agent.managed") == "true"
            assert proposal.target not in s.breaker_open
        if s.mode == Mode.APPROVAL and proposal.kind not in SAFE_KINDS:
            assert proposal.approved


@settings(max_examples=300, deadline=None)
@given(proposal_st, state_st, policy_st)
def test_every_refusal_has_a_reason(proposal: Proposal, s: GateState, policy: Policy) -> None:
    d = decide(proposal, policy, s)
    assert d.reason


def test_notifications_do_not_count_toward_the_hourly_limit_on_remediation() -> None:
    from sre_agent.domain.actions import gate_history_of

    now = 10_000.0
    rows = [{"kind": kind, "target": "" if kind in ("notify", "escalate") else "web",
             "status": "succeeded", "started_ts": now - 60 - i, "updated_ts": now - 60 - i}
            for i, kind in enumerate(["escalate"] * 25 + ["notify"] * 5
                                     + ["restart_container"] * 2)]
    hist = gate_history_of(rows, now, 3600, breaker_open=set(), track_record={})
    assert len(hist.recent_runs) == 2  # the two restarts, not the thirty notifications
    s = state(last_run={}, recent_runs=tuple(hist.recent_runs),
              recent_runs_by_target={k: tuple(v) for k, v in hist.recent_runs_by_target.items()})
    assert decide(restart(target="api"), POLICY, s).outcome == Outcome.EXECUTE
