"""The combined engine: switching the LLM on can only help (analysis/combine.py)."""

from __future__ import annotations

from typing import Any

import pytest

from sre_agent.analysis.chain import FallbackAnalyzer
from sre_agent.analysis.combine import combine, evidence_for, understood
from sre_agent.domain.diagnosis import (
    ActionKind,
    Category,
    Diagnosis,
    Engine,
    ProposedAction,
)
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget
from sre_agent.domain.incident import Mode
from sre_agent.domain.policy import GateState, Outcome, Policy, Proposal, decide

START = ProposedAction(kind=ActionKind.START_CONTAINER, target="api", reason="exited")
RESTART = ProposedAction(kind=ActionKind.RESTART_CONTAINER, target="api", reason="hung")
SILENCE = ProposedAction(kind=ActionKind.SILENCE_ALERT, reason="noise")
NOTIFY = ProposedAction(kind=ActionKind.NOTIFY, reason="tell")
ESCALATE = ProposedAction(kind=ActionKind.ESCALATE, reason="human")


def rules(actions: list[ProposedAction], confidence: float = 0.9,
          runbook: str | None = "container-exited",
          category: Category = Category.AVAILABILITY) -> Diagnosis:
    return Diagnosis(summary="rules summary", probable_cause="rules cause", category=category,
                     confidence=confidence, proposed_actions=actions, engine=Engine.RULES,
                     runbook=runbook)


def llm(actions: list[ProposedAction], category: Category = Category.ERRORS,
        **kw: Any) -> Diagnosis:
    return Diagnosis(summary="llm summary", probable_cause="llm cause", category=category,
                     confidence=0.4, proposed_actions=actions, engine=Engine.LLM,
                     model="m", tokens=900, **kw)


def state(status: str, health: str = "none") -> list[Evidence]:
    return [Evidence(source="docker", name="api", status=EvidenceStatus.OK,
                     data={"container": "api", "status": status, "health": health})]


def kinds(d: Diagnosis) -> list[ActionKind]:
    return [a.kind for a in d.proposed_actions]


def test_a_confident_runbook_keeps_its_action_over_an_unbacked_llm_alternative() -> None:
    # The case: a stopped container, the rules say start (0.9), the model says silence.
    out = combine(rules([START]), llm([SILENCE]), state("exited"))
    assert kinds(out) == [ActionKind.START_CONTAINER]
    assert out.action_engine is Engine.RULES and "container-exited" in out.action_reason
    assert out.dropped_actions[-1]["kind"] == "silence_alert"
    assert "not backed by the evidence" in out.dropped_actions[-1]["reason"]
    # The LLM's text, the rules' classification.
    assert out.summary == "llm summary" and out.probable_cause == "llm cause"
    assert out.category is Category.AVAILABILITY and out.confidence == 0.9
    assert out.engine is Engine.LLM and out.tokens == 900 and out.model == "m"
    assert any("runbook container-exited" in e for e in out.evidence)


def test_the_llm_proposing_nothing_leaves_the_runbook_actions() -> None:
    out = combine(rules([START]), llm([]), state("exited"))
    assert kinds(out) == [ActionKind.START_CONTAINER] and out.action_engine is Engine.RULES


def test_a_backed_llm_alternative_replaces_the_rules_action_and_needs_approval() -> None:
    out = combine(rules([RESTART], runbook="target-down"), llm([START]), state("exited"))
    assert kinds(out) == [ActionKind.START_CONTAINER]
    [action] = out.proposed_actions
    assert action.needs_approval and "container api is exited" in action.reason
    assert out.action_engine is Engine.LLM and "needs approval" in out.action_reason


def test_agreement_is_not_an_alternative() -> None:
    out = combine(rules([START]), llm([START]), state("exited"))
    assert out.proposed_actions == [START] and not out.proposed_actions[0].needs_approval


def test_no_confident_match_lets_the_llm_proposal_stand_beside_the_humans() -> None:
    r = rules([NOTIFY, ESCALATE], confidence=0.2, runbook="default", category=Category.UNKNOWN)
    out = combine(r, llm([RESTART]), state("running", "unhealthy"))
    assert kinds(out) == [ActionKind.RESTART_CONTAINER, ActionKind.NOTIFY, ActionKind.ESCALATE]
    assert not any(a.needs_approval for a in out.proposed_actions)  # the gate still decides
    assert out.action_engine is Engine.LLM and out.category is Category.ERRORS


def test_no_match_still_needs_evidence_for_a_container_action() -> None:
    # Seen on the real 1.5B model: restart_container on a running, healthy target, no runbook.
    r = rules([NOTIFY, ESCALATE], confidence=0.2, runbook="default", category=Category.UNKNOWN)
    out = combine(r, llm([RESTART]), state("running", "healthy"))
    assert kinds(out) == [ActionKind.NOTIFY, ActionKind.ESCALATE]
    assert out.action_engine is Engine.RULES
    assert "does not back" in out.dropped_actions[-1]["reason"]


def test_no_match_llm_silence_needs_approval() -> None:
    r = rules([NOTIFY], confidence=0.4, runbook="low-disk", category=Category.CAPACITY)
    out = combine(r, llm([SILENCE]), [])
    assert kinds(out) == [ActionKind.SILENCE_ALERT, ActionKind.NOTIFY]
    assert out.proposed_actions[0].needs_approval


def test_no_match_llm_silence_cannot_hide_what_the_rules_escalate() -> None:
    # Seen on the real 1.5B model: an alert nobody has a runbook for, the rules escalate, the
    # model says silence. The silence is dropped; the human still gets the escalation.
    r = rules([NOTIFY, ESCALATE], confidence=0.2, runbook="default", category=Category.UNKNOWN)
    out = combine(r, llm([SILENCE]), [])
    assert kinds(out) == [ActionKind.NOTIFY, ActionKind.ESCALATE]
    assert out.action_engine is Engine.RULES
    assert out.dropped_actions[-1]["kind"] == "silence_alert"
    assert "escalate" in out.dropped_actions[-1]["reason"]


def test_no_match_and_no_llm_proposal_keeps_the_rules_default() -> None:
    r = rules([NOTIFY, ESCALATE], confidence=0.2, runbook="default", category=Category.UNKNOWN)
    out = combine(r, llm([], category=Category.UNKNOWN), [])
    assert kinds(out) == [ActionKind.NOTIFY, ActionKind.ESCALATE]
    assert out.action_engine is Engine.RULES and out.category is Category.UNKNOWN


@pytest.mark.parametrize(("action", "evidence", "backed"), [
    (START, state("exited"), True),
    (START, state("running"), False),
    (RESTART, state("running", "unhealthy"), True),
    (RESTART, state("restarting"), True),
    (RESTART, state("running", "healthy"), False),
    (RESTART, state("exited"), False),
    (START, [], False),
    (SILENCE, state("exited"), False),
    (ProposedAction(kind=ActionKind.START_CONTAINER, target="other"), state("exited"), False),
])
def test_evidence_for(action: ProposedAction, evidence: list[Evidence], backed: bool) -> None:
    assert (evidence_for(action, evidence) is not None) is backed


def test_understood_needs_a_runbook_and_confidence() -> None:
    assert understood(rules([], confidence=0.6))
    assert not understood(rules([], confidence=0.2))
    assert not understood(rules([], runbook=None))


def test_the_gate_asks_an_operator_for_a_needs_approval_action_even_autonomous() -> None:
    policy = Policy()
    gate = GateState(mode=Mode.AUTONOMOUS, now=1000.0)
    base = dict(kind=ActionKind.START_CONTAINER, target="api", confidence=0.9,
                target_verified=True, target_labels={"sre-agent.managed": "true"})
    assert decide(Proposal(**base), policy, gate).outcome is Outcome.EXECUTE  # type: ignore[arg-type]
    flagged = decide(Proposal(**base, needs_approval=True), policy, gate)  # type: ignore[arg-type]
    assert flagged.outcome is Outcome.NEEDS_APPROVAL and "alternative" in flagged.reason
    approved = decide(Proposal(**base, needs_approval=True, approved=True), policy, gate)  # type: ignore[arg-type]
    assert approved.outcome is Outcome.EXECUTE


# --- through the chain -----------------------------------------------------------------------


class Fixed:
    def __init__(self, name: str, diagnosis: Diagnosis) -> None:
        self.name = name
        self.diagnosis = diagnosis
        self.calls = 0

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        self.calls += 1
        return self.diagnosis


CTX = AlertContext(incident_id="i-1", group_key="g", alerts=[])
TARGETS = [ResolvedTarget(name="api", via="label", verified=True)]


async def test_the_chain_combines_when_asked() -> None:
    chain = FallbackAnalyzer(Fixed("llm", llm([SILENCE])), Fixed("rules", rules([START])),
                             combine=True)
    out = await chain.analyse(CTX, TARGETS, state("exited"))
    assert kinds(out) == [ActionKind.START_CONTAINER] and out.action_engine is Engine.RULES
    assert chain.status()["combined_with_rules"] is True


async def test_the_chain_without_combine_gives_the_llm_alone() -> None:
    rules_engine = Fixed("rules", rules([START]))
    chain = FallbackAnalyzer(Fixed("llm", llm([SILENCE])), rules_engine)
    out = await chain.analyse(CTX, TARGETS, state("exited"))
    assert kinds(out) == [ActionKind.SILENCE_ALERT] and rules_engine.calls == 0
