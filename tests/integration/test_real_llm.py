"""What a real model does: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M) behind llama.cpp's llama-server.

A handful of analyses (the CI budget: a few minutes on 2 cores); the full scenario suite on the
real model is ``benchmarks/llm_analysis.py``, with committed results. Failure cases (slow, 500,
garbage, hostile) stay with the scripted server.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from sre_agent.analysis.chain import FallbackAnalyzer
from sre_agent.analysis.llm import LangChainAnalyzer, LLMInvalidOutput
from sre_agent.analysis.protocol import TOOL_NAMES
from sre_agent.analysis.rules import RulesAnalyzer
from sre_agent.config import LLMSettings
from sre_agent.domain.diagnosis import Diagnosis, Engine
from sre_agent.evaluation import RecordedTools, Scenario, load_scenario, score
from tests.support.llama import LlamaServer
from tests.support.llama import real_llm as real_llm  # the session fixture

pytestmark = [pytest.mark.integration, pytest.mark.real_llm]
SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
# Generous: a loaded 2-core machine runs the 1.5B model at 5-11 tokens/s.
TIMEOUT_S = 240.0


def settings(server: LlamaServer, **overrides: object) -> LLMSettings:
    values: dict[str, object] = {"base_url": server.url, "model": server.model,
                                 "timeout_s": TIMEOUT_S, "max_retries": 0,
                                 "investigation": "off", **overrides}
    return LLMSettings(**values)  # type: ignore[arg-type]


def scenario(name: str) -> Scenario:
    return load_scenario(SCENARIOS / f"{name}.yaml")


async def analyse(analyzer: object, s: Scenario) -> Diagnosis:
    result = await analyzer.analyse(  # type: ignore[attr-defined]
        s.context(), list(s.targets), list(s.evidence))
    assert isinstance(result, Diagnosis)
    return result


def answer_of(d: Diagnosis) -> tuple[object, ...]:
    return (d.summary, d.probable_cause, d.category, d.severity, d.confidence,
            tuple((a.kind, a.target) for a in d.proposed_actions))


async def test_same_alert_and_evidence_give_the_same_diagnosis(real_llm: LlamaServer) -> None:
    s = scenario("container-killed-exited")
    analyzer = LangChainAnalyzer(settings(real_llm))
    answers = [await analyse(analyzer, s) for _ in range(3)]
    assert all(d.engine is Engine.LLM and d.model for d in answers)
    assert all(d.tokens > 0 for d in answers)
    assert {answer_of(d) for d in answers} == {answer_of(answers[0])}, [
        answer_of(d) for d in answers]


async def test_the_output_token_bound_holds_on_the_real_server(real_llm: LlamaServer) -> None:
    s = scenario("container-killed-exited")
    analyzer = LangChainAnalyzer(settings(real_llm, max_output_tokens=16))
    started = time.monotonic()
    with pytest.raises(LLMInvalidOutput, match="output token limit") as caught:
        await analyse(analyzer, s)  # 16 tokens cannot hold a diagnosis: cut, then refused
    assert time.monotonic() - started < TIMEOUT_S
    assert caught.value.tokens > 0


async def test_a_real_prompted_tool_round(real_llm: LlamaServer) -> None:
    # The container's state is not in the evidence: only a tool can show it.
    full = scenario("target-down-container-exited")
    partial = full.model_copy(update={"evidence": [e for e in full.evidence
                                                   if e.source != "docker"]})
    tools = RecordedTools()
    tools.scenario = full
    analyzer = LangChainAnalyzer(settings(real_llm, investigation="prompted",
                                          max_tool_calls=2), tools)
    diagnosis = await analyse(analyzer, partial)
    assert diagnosis.engine is Engine.LLM
    ran = [c for c in diagnosis.tool_calls if c.get("tool") in TOOL_NAMES]
    assert ran, diagnosis.tool_calls
    assert len(diagnosis.tool_calls) <= 2


@pytest.mark.parametrize(("name", "investigation"), [
    ("container-killed-exited", "off"),  # the case: rules start, the model silenced
    ("instance-down-hung-container", "off"),
    ("unknown-alert-no-signal", "off"),  # no runbook: the LLM's proposal stands beside them
    # A local server's default (auto: prompted), on an incident whose evidence has a gap (Docker
    # did not answer), so the model investigates with the recorded tools before answering.
    ("target-down-docker-unreachable", "prompted"),
])
async def test_combined_is_never_below_the_rules(real_llm: LlamaServer, name: str,
                                                 investigation: str) -> None:
    s = scenario(name)
    rules = RulesAnalyzer()
    tools = RecordedTools()
    tools.scenario = s
    combined = FallbackAnalyzer.from_settings(
        settings(real_llm, investigation=investigation, max_tool_calls=2), rules,
        tools=tools, combine=True)
    by_rules = score(s, await analyse(rules, s))
    diagnosis = await analyse(combined, s)
    if diagnosis.explanation_pending:  # decided at once (combine rule 5): the LLM explains
        diagnosis = await combined.explain(s.context(), list(s.targets), list(s.evidence),
                                           diagnosis)
    by_combined = score(s, diagnosis)
    assert diagnosis.engine is Engine.LLM, diagnosis.fallback_reason
    assert diagnosis.action_engine is not None and diagnosis.action_reason
    assert by_combined.unsafe == []
    assert by_combined.action_ok or not by_rules.action_ok, (diagnosis.proposed_actions,
                                                             diagnosis.action_reason)


async def test_a_decisive_runbook_is_proposed_at_once_and_the_real_model_explains_it(
        real_llm: LlamaServer) -> None:
    s = scenario("container-killed-exited")
    chain = FallbackAnalyzer.from_settings(settings(real_llm), RulesAnalyzer(), combine=True)
    started = time.monotonic()
    decided = await analyse(chain, s)
    assert time.monotonic() - started < 1.0  # no model call on the way to the action
    assert decided.explanation_pending and decided.tokens == 0
    assert [a.kind.value for a in decided.proposed_actions] == ["start_container"]
    explained = await chain.explain(s.context(), list(s.targets), list(s.evidence), decided)
    assert explained.fallback_reason is None, explained.fallback_reason
    assert explained.engine is Engine.LLM and explained.tokens > 0 and explained.summary
    assert [(a.kind, a.target) for a in explained.proposed_actions] == [
        (a.kind, a.target) for a in decided.proposed_actions]
