"""Rule 5 of the combined engine: the LLM is not waited for when it cannot change the actions.

``llm_can_change_actions`` is checked against ``combine`` itself over every recorded scenario
and every LLM answer that could be made of the action kinds and the scenario's targets: when it
says the LLM cannot change the actions, no answer does. Then the chain (a fake LLM counting
its calls), the pipeline (in-memory store) and the folding of the explanation.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from sre_agent.analysis.chain import FallbackAnalyzer
from sre_agent.analysis.combine import combine, llm_can_change_actions
from sre_agent.analysis.rules import RulesAnalyzer
from sre_agent.analysis.validation import validate_proposals
from sre_agent.domain.diagnosis import (
    ActionKind,
    Category,
    Diagnosis,
    Engine,
    ProposedAction,
    with_explanation,
)
from sre_agent.domain.events import EventType
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget
from sre_agent.evaluation import Scenario, load_scenarios

SCENARIOS = load_scenarios(Path(__file__).resolve().parents[1] / "scenarios")


def _keys(d: Diagnosis) -> list[tuple[str, str | None]]:
    return sorted((a.kind.value, a.target) for a in d.proposed_actions)


def _answers(scenario: Scenario) -> list[list[ProposedAction]]:
    """Every LLM answer of at most two actions over the kinds and the scenario's targets."""
    names: list[str | None] = [None, *(t.name for t in scenario.targets)]
    singles = [ProposedAction(kind=k, target=t, reason="llm")
               for k in ActionKind for t in names]
    return [[], *([a] for a in singles), *(list(p) for p in itertools.combinations(singles, 2))]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_when_the_llm_cannot_change_the_actions_no_answer_does(scenario: Scenario) -> None:
    rules = validate_proposals(asyncio.run(RulesAnalyzer().analyse(
        scenario.context(), list(scenario.targets), list(scenario.evidence))),
        list(scenario.targets))
    names = [t.name for t in scenario.targets]
    if llm_can_change_actions(rules, names, list(scenario.evidence)):
        return  # the LLM is waited for: rules 1-4 apply as before (test_combine.py)
    for actions in _answers(scenario):
        llm = validate_proposals(Diagnosis(summary="llm", proposed_actions=actions,
                                           engine=Engine.LLM), list(scenario.targets))
        out = validate_proposals(combine(rules, llm, list(scenario.evidence)),
                                 list(scenario.targets))
        assert _keys(out) == _keys(rules), (scenario.name, actions)
        assert not any(a.needs_approval for a in out.proposed_actions)


def test_the_decisive_scenarios_are_the_ones_a_runbook_understood() -> None:
    # Not vacuous: a good part of the suite is decided without the LLM, and some is not.
    decided = []
    for s in SCENARIOS:
        rules = asyncio.run(RulesAnalyzer().analyse(s.context(), list(s.targets),
                                                    list(s.evidence)))
        if not llm_can_change_actions(rules, [t.name for t in s.targets], list(s.evidence)):
            decided.append(s.name)
    assert "container-killed-exited" in decided
    assert 0 < len(decided) < len(SCENARIOS)


def test_a_backed_action_the_rules_did_not_propose_keeps_the_llm_in_the_loop() -> None:
    rules = Diagnosis(summary="r", confidence=0.9, runbook="rb", proposed_actions=[
        ProposedAction(kind=ActionKind.NOTIFY)])
    exited = [Evidence(source="docker", name="api", status=EvidenceStatus.OK, data={
        "container": "api", "status": "exited"})]
    assert llm_can_change_actions(rules, ["api"], exited)
    assert not llm_can_change_actions(rules, ["api"], [])  # nothing backs a container action
    unsure = rules.model_copy(update={"confidence": 0.3})
    assert llm_can_change_actions(unsure, [], [])  # not understood: the LLM always matters


class CountingLLM:
    name = "llm"

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        self.calls += 1
        if self.fail:
            raise TimeoutError("slow")
        return Diagnosis(summary="the llm's summary", probable_cause="the llm's cause",
                         category=Category.ERRORS, evidence=["fact"], engine=Engine.LLM,
                         model="m", tokens=700, latency_ms=5000.0, proposed_actions=[
                             ProposedAction(kind=ActionKind.SILENCE_ALERT, reason="noise")])


def _scenario(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.name == name)


def _chain(llm: CountingLLM, **kw: Any) -> FallbackAnalyzer:
    return FallbackAnalyzer(llm, RulesAnalyzer(), combine=True, model="m", **kw)


def test_the_chain_proposes_a_decisive_runbook_at_once_and_explains_after() -> None:
    s = _scenario("container-killed-exited")
    llm = CountingLLM()
    chain = _chain(llm)
    decided = asyncio.run(chain.analyse(s.context(), list(s.targets), list(s.evidence)))
    assert llm.calls == 0 and decided.explanation_pending
    assert decided.engine is Engine.RULES and decided.action_engine is Engine.RULES
    assert [a.kind for a in decided.proposed_actions] == [ActionKind.START_CONTAINER]
    assert "no LLM answer can change the actions" in decided.action_reason
    explained = asyncio.run(chain.explain(s.context(), list(s.targets), list(s.evidence),
                                          decided))
    assert llm.calls == 1 and not explained.explanation_pending
    assert explained.summary == "the llm's summary" and explained.tokens == 700
    assert _keys(explained) == _keys(decided)  # the silence is dropped, the start stands
    assert any(d["kind"] == "silence_alert" for d in explained.dropped_actions)


def test_a_failed_explanation_says_why_and_changes_nothing() -> None:
    s = _scenario("container-killed-exited")
    chain = _chain(CountingLLM(fail=True))
    decided = asyncio.run(chain.analyse(s.context(), list(s.targets), list(s.evidence)))
    explained = asyncio.run(chain.explain(s.context(), list(s.targets), list(s.evidence),
                                          decided))
    assert explained.fallback_reason and explained.summary == decided.summary
    assert _keys(explained) == _keys(decided)


def test_waiting_is_a_setting_and_an_open_breaker_skips_the_deferral() -> None:
    s = _scenario("container-killed-exited")
    llm = CountingLLM()
    waited = asyncio.run(_chain(llm, explain_after_acting=False).analyse(
        s.context(), list(s.targets), list(s.evidence)))
    assert llm.calls == 1 and not waited.explanation_pending
    assert waited.summary == "the llm's summary"
    broken = _chain(CountingLLM(fail=True), breaker_failures=1)
    asyncio.run(broken.analyse(*_undecided()))  # one failure opens the breaker
    out = asyncio.run(broken.analyse(s.context(), list(s.targets), list(s.evidence)))
    assert not out.explanation_pending and out.fallback_reason == "llm breaker open"


def _undecided() -> tuple[AlertContext, list[ResolvedTarget], list[Evidence]]:
    s = next(s for s in SCENARIOS if llm_can_change_actions(
        asyncio.run(RulesAnalyzer().analyse(s.context(), list(s.targets), list(s.evidence))),
        [t.name for t in s.targets], list(s.evidence)))
    return s.context(), list(s.targets), list(s.evidence)


def test_the_explanation_folds_into_the_recorded_diagnosis() -> None:
    produced = {"summary": "rules", "tokens": 0, "explanation_pending": True,
                "proposed_actions": [{"kind": "start_container", "target": "api"}],
                "confidence": 0.9, "engine": "rules"}
    out = with_explanation(produced, {"summary": "llm", "probable_cause": "c", "tokens": 600,
                                      "model": "m", "evidence": ["e"]})
    assert out["summary"] == "llm" and out["tokens"] == 600 and out["explained_by"] == "llm"
    assert out["proposed_actions"] == produced["proposed_actions"]
    assert out["confidence"] == 0.9 and not out["explanation_pending"]
    failed = with_explanation(produced, {"fallback_reason": "llm timeout"})
    assert failed["summary"] == "rules" and failed["explanation_fallback_reason"] == \
        "llm timeout"
    assert EventType.DIAGNOSIS_EXPLAINED == "DiagnosisExplained"
