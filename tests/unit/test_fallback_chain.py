"""FallbackAnalyzer with fake analyzers and a fake clock: breaker, budgets, reasons."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any, cast

import pytest
from pydantic import SecretStr

from sre_agent.analysis.chain import FallbackAnalyzer, describe_failure
from sre_agent.analysis.validation import (
    LLMError,
    LLMHTTPError,
    LLMInvalidOutput,
    LLMRefusal,
    LLMTimeout,
)
from sre_agent.config import LLMSettings
from sre_agent.domain.diagnosis import ActionKind, Diagnosis, Engine, ProposedAction
from sre_agent.domain.evidence import AlertContext, Evidence, ResolvedTarget

TARGETS = [ResolvedTarget(name="api", via="label:container", verified=True)]


def ctx(incident_id: str = "inc-1") -> AlertContext:
    return AlertContext(incident_id=incident_id, group_key="g",
                        alerts=[{"labels": {"alertname": "TargetDown"}}])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakePrimary:
    """Answers from a queue of outcomes: a Diagnosis, an exception to raise, or a coroutine."""

    name = "llm"

    def __init__(self, *outcomes: Any, tokens: int = 100) -> None:
        self.outcomes = list(outcomes)
        self.tokens = tokens
        self.calls = 0

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        self.calls += 1
        outcome = self.outcomes.pop(0) if self.outcomes else "ok"
        if isinstance(outcome, BaseException):
            raise outcome
        if callable(outcome):
            return await outcome()  # type: ignore[no-any-return]
        if outcome == "ok":
            return Diagnosis(summary="llm says", engine=Engine.LLM, tokens=self.tokens,
                             proposed_actions=[
                                 ProposedAction(kind=ActionKind.RESTART_CONTAINER, target="api"),
                                 ProposedAction(kind=ActionKind.RESTART_CONTAINER,
                                                target="database")])
        return cast(Diagnosis, outcome)


class FakeRules:
    name = "rules"

    def __init__(self) -> None:
        self.calls = 0

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        self.calls += 1
        return Diagnosis(summary="rules say", engine=Engine.RULES, proposed_actions=[
            ProposedAction(kind=ActionKind.RESTART_CONTAINER, target="api"),
            ProposedAction(kind=ActionKind.START_CONTAINER, target="elsewhere")])


def make(primary: Any, clock: Clock | None = None, **overrides: Any) -> FallbackAnalyzer:
    values: dict[str, Any] = {"breaker_failures": 3, "breaker_cooldown_s": 60.0,
                              "calls_per_minute": 100, "max_tokens_per_incident": 10_000,
                              "hard_timeout_s": 5.0, "clock": clock or Clock(), **overrides}
    return FallbackAnalyzer(primary, FakeRules(), **values)


async def run(chain: FallbackAnalyzer, incident_id: str = "inc-1") -> Diagnosis:
    return await chain.analyse(ctx(incident_id), TARGETS, [])


async def test_no_primary_uses_the_rules_without_a_reason() -> None:
    chain = make(None)
    diagnosis = await run(chain)
    assert diagnosis.engine is Engine.RULES and diagnosis.fallback_reason is None
    assert chain.status()["configured"] is False


async def test_primary_success_is_validated() -> None:
    primary = FakePrimary()
    diagnosis = await run(make(primary))
    assert diagnosis.engine is Engine.LLM and diagnosis.fallback_reason is None
    assert [a.target for a in diagnosis.proposed_actions] == ["api"]
    assert diagnosis.dropped_actions[0]["target"] == "database"


async def test_fallback_is_validated_too() -> None:
    diagnosis = await run(make(FakePrimary(LLMTimeout("slow"))))
    assert diagnosis.engine is Engine.RULES
    assert [a.target for a in diagnosis.proposed_actions] == ["api"]
    assert diagnosis.dropped_actions == [{"kind": "start_container", "target": "elsewhere",
                                          "reason": "target is not a resolved target of "
                                                    "this incident"}]


@pytest.mark.parametrize(("exc", "reason"), [
    (LLMTimeout("x"), "llm timeout"),
    (TimeoutError(), "llm timeout"),
    (LLMHTTPError("x", status=500), "llm http 500"),
    (LLMHTTPError("x"), "llm connection error"),
    (LLMInvalidOutput("confidence 7 outside 0..1"),
     "llm invalid output: confidence 7 outside 0..1"),
    (LLMRefusal("no"), "llm refusal"),
    (LLMError("odd"), "llm error: odd"),
    (RuntimeError("boom"), "llm error: RuntimeError: boom"),
])
async def test_failure_reasons(exc: Exception, reason: str) -> None:
    assert describe_failure(exc) == reason
    diagnosis = await run(make(FakePrimary(exc)))
    assert diagnosis.engine is Engine.RULES and diagnosis.fallback_reason == reason


async def test_non_diagnosis_result_is_invalid_output() -> None:
    diagnosis = await run(make(FakePrimary({"summary": "a dict"})))
    assert diagnosis.fallback_reason is not None
    assert diagnosis.fallback_reason.startswith("llm invalid output")


async def test_hard_timeout() -> None:
    async def slow() -> Diagnosis:
        await asyncio.sleep(5)
        raise AssertionError("not reached")

    diagnosis = await run(make(FakePrimary(slow), hard_timeout_s=0.05))
    assert diagnosis.fallback_reason == "llm timeout"


async def test_breaker_opens_then_half_opens() -> None:
    clock = Clock()
    primary = FakePrimary(*[LLMHTTPError("x", status=503)] * 4)
    chain = make(primary, clock, breaker_failures=3, breaker_cooldown_s=60.0)

    for _ in range(3):
        assert (await run(chain)).fallback_reason == "llm http 503"
    assert primary.calls == 3
    status = chain.status()
    assert status["breaker_open"] is True and status["consecutive_failures"] == 3
    assert status["breaker_cooldown_remaining_s"] == 60.0

    clock.advance(59)
    assert (await run(chain)).fallback_reason == "llm breaker open"
    assert primary.calls == 3

    # Half-open: one trial, it fails, the breaker opens for another full cooldown.
    clock.advance(1)
    assert chain.status()["breaker_state"] == "half_open"
    assert (await run(chain)).fallback_reason == "llm http 503"
    assert primary.calls == 4
    assert (await run(chain)).fallback_reason == "llm breaker open"
    clock.advance(59)
    assert (await run(chain)).fallback_reason == "llm breaker open"
    assert primary.calls == 4

    # Next trial succeeds: closed again, failures reset.
    clock.advance(1)
    diagnosis = await run(chain)
    assert diagnosis.engine is Engine.LLM and primary.calls == 5
    assert chain.status()["breaker_state"] == "closed"
    assert chain.status()["consecutive_failures"] == 0


async def test_success_resets_the_failure_count() -> None:
    primary = FakePrimary(LLMTimeout("x"), LLMTimeout("x"), "ok", LLMTimeout("x"),
                          LLMTimeout("x"))
    chain = make(primary, breaker_failures=3)
    for _ in range(5):
        await run(chain)
    assert chain.status()["breaker_open"] is False
    assert chain.status()["consecutive_failures"] == 2


async def test_half_open_lets_only_one_trial_through() -> None:
    clock = Clock()
    release = asyncio.Event()

    async def slow_ok() -> Diagnosis:
        await release.wait()
        return Diagnosis(summary="late", engine=Engine.LLM)

    primary = FakePrimary(LLMTimeout("x"), slow_ok)
    chain = make(primary, clock, breaker_failures=1, breaker_cooldown_s=10.0)
    await run(chain)
    clock.advance(10)

    trial = asyncio.create_task(run(chain))
    await asyncio.sleep(0)
    other = await run(chain)
    assert other.fallback_reason == "llm breaker open"
    release.set()
    assert (await trial).engine is Engine.LLM
    assert primary.calls == 2


async def test_cancelled_trial_does_not_wedge_the_breaker() -> None:
    clock = Clock()

    async def hang() -> Diagnosis:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    primary = FakePrimary(LLMTimeout("x"), hang, "ok")
    chain = make(primary, clock, breaker_failures=1, breaker_cooldown_s=10.0,
                 hard_timeout_s=None)
    await run(chain)
    clock.advance(10)
    task = asyncio.create_task(run(chain))
    await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await run(chain)).engine is Engine.LLM


async def test_rate_limit_sliding_window() -> None:
    clock = Clock()
    primary = FakePrimary()
    chain = make(primary, clock, calls_per_minute=2)

    assert (await run(chain)).engine is Engine.LLM
    clock.advance(30)
    assert (await run(chain)).engine is Engine.LLM
    clock.advance(10)
    diagnosis = await run(chain)
    assert diagnosis.fallback_reason == "llm rate limit" and primary.calls == 2
    assert chain.status()["calls_last_minute"] == 2
    # The first call leaves the window 60 s after it was made.
    clock.advance(20)
    assert (await run(chain)).engine is Engine.LLM
    assert primary.calls == 3
    # Rate-limit skips are not failures.
    assert chain.status()["consecutive_failures"] == 0


async def test_token_budget_per_incident() -> None:
    primary = FakePrimary(tokens=600)
    chain = make(primary, max_tokens_per_incident=1000)

    assert (await run(chain, "a")).engine is Engine.LLM
    assert (await run(chain, "a")).engine is Engine.LLM  # 600 used < 1000
    diagnosis = await run(chain, "a")  # 1200 used
    assert diagnosis.fallback_reason == "llm token budget" and primary.calls == 2
    assert (await run(chain, "b")).engine is Engine.LLM  # another incident has its own budget


async def test_tokens_spent_by_failures_count_against_the_budget() -> None:
    primary = FakePrimary(LLMInvalidOutput("bad", tokens=1500))
    chain = make(primary, max_tokens_per_incident=1000)
    assert (await run(chain)).fallback_reason == "llm invalid output: bad"
    assert (await run(chain)).fallback_reason == "llm token budget"
    assert primary.calls == 1


async def test_token_budget_memory_is_bounded() -> None:
    chain = make(FakePrimary(tokens=10), max_tracked_incidents=3)
    for i in range(10):
        await run(chain, f"inc-{i}")
    assert len(chain._tokens) == 3


async def test_from_settings_without_a_key_has_no_primary() -> None:
    chain = FallbackAnalyzer.from_settings(LLMSettings(), FakeRules())
    assert chain.status()["configured"] is False
    assert (await run(chain)).fallback_reason is None


def test_from_settings_with_a_key_builds_the_llm() -> None:
    settings = LLMSettings(api_key=SecretStr("sk-test-0123456789"),
                           base_url="http://127.0.0.1:9/v1", breaker_failures=5, timeout_s=4)
    chain = FallbackAnalyzer.from_settings(settings, FakeRules())
    status = chain.status()
    assert status["configured"] is True and status["primary"] == "llm"
    assert chain._hard_timeout_s == 8
    assert chain._breaker_failures == 5


def test_importing_the_chain_does_not_import_langchain() -> None:
    code = ("import sre_agent.analysis.chain, sre_agent.analysis.tools, "
            "sre_agent.analysis.prompts, sre_agent.analysis.validation, sys; "
            "bad = [m for m in sys.modules if m.startswith(('langchain', 'openai'))]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
