"""Bounded, deterministic calls and the prompted investigation, against the scripted server.

The scripted OpenAI-protocol server (tests/support/openai_server.py) is the right tool for what a
real model will not do on demand: answer late, fail with 429/500, ask for forbidden tools.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sre_agent.analysis.llm import (
    LangChainAnalyzer,
    LLMHTTPError,
    LLMInvalidOutput,
    LLMTimeout,
    retryable,
)
from sre_agent.config import LLMSettings
from sre_agent.domain.diagnosis import Engine
from tests.integration.test_llm_analyzer import (
    EVIDENCE,
    GOOD,
    TARGETS,
    FakeTools,
    make_ctx,
    settings_for,
)
from tests.support.components import free_port
from tests.support.openai_server import (
    OpenAIServer,
    answer,
    content,
    delay,
    http_error,
)
from tests.support.openai_server import (
    openai_server as openai_server,  # the fixture
)

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
# A prompted investigation is offered only where the evidence has a gap a tool could fill
# (prompts.evidence_gaps): here the container's state is missing, only a tool can show it.
GAPPY = [e for e in EVIDENCE if e.source != "docker"]


async def test_every_request_is_bounded_and_deterministic(openai_server: OpenAIServer) -> None:
    openai_server.script([content('{"tool": "none"}'), answer(GOOD)])
    settings = settings_for(openai_server, investigation="prompted", seed=7,
                            max_output_tokens=300)
    diagnosis = await LangChainAnalyzer(settings, FakeTools()).analyse(
        make_ctx(), TARGETS, GAPPY)
    assert diagnosis.engine is Engine.LLM
    assert len(openai_server.requests) == 2
    for request in openai_server.requests:
        body = request.body
        assert body["max_completion_tokens"] == 300
        assert body["temperature"] == 0.0 and body["seed"] == 7


async def test_each_analysis_first_primes_the_prompt_cache(openai_server: OpenAIServer) -> None:
    openai_server.script([content("x"), answer(GOOD)])
    settings = LLMSettings(base_url=openai_server.url, model="local", investigation="off",
                           max_retries=0)
    assert settings.primes_prompt_cache  # auto: on for a local server
    diagnosis = await LangChainAnalyzer(settings).analyse(make_ctx(), TARGETS, EVIDENCE)
    prime, real = openai_server.requests
    assert [m["role"] for m in prime.messages] == ["system"]
    assert prime.body["max_completion_tokens"] == 1
    assert prime.messages[0] == real.messages[0]  # exactly the real request's prefix
    assert diagnosis.tokens == 120  # the prime's tokens are not the incident's


async def test_a_failed_prime_does_not_fail_the_analysis(openai_server: OpenAIServer) -> None:
    openai_server.script([http_error(500), answer(GOOD)])
    settings = LLMSettings(base_url=openai_server.url, model="local", investigation="off",
                           max_retries=0)
    diagnosis = await LangChainAnalyzer(settings).analyse(make_ctx(), TARGETS, EVIDENCE)
    assert diagnosis.engine is Engine.LLM and len(openai_server.requests) == 2


async def test_the_static_system_prompt_comes_first_and_never_changes(
        openai_server: OpenAIServer) -> None:
    openai_server.script([answer(GOOD), answer(GOOD)])
    analyzer = LangChainAnalyzer(settings_for(openai_server, investigation="off"))
    await analyzer.analyse(make_ctx({"summary": "first"}), TARGETS, EVIDENCE)
    await analyzer.analyse(make_ctx({"summary": "second"}), [], [])
    first, second = (r.messages for r in openai_server.requests)
    assert first[0]["role"] == "system" and first[0] == second[0]  # the cacheable prefix
    assert "Answer format" in first[0]["content"]
    assert "first" in first[1]["content"] and "second" in second[1]["content"]


async def test_a_timed_out_request_is_not_retried(openai_server: OpenAIServer) -> None:
    openai_server.script([delay(2.0, answer(GOOD)), answer(GOOD)])
    analyzer = LangChainAnalyzer(settings_for(openai_server, timeout_s=0.4, max_retries=3,
                                              investigation="off"))
    started = time.monotonic()
    with pytest.raises(LLMTimeout):
        await analyzer.analyse(make_ctx(), TARGETS, EVIDENCE)
    assert time.monotonic() - started < 1.5
    assert len(openai_server.requests) == 1  # no retry queued behind the stuck request


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_retryable_statuses_are_retried(openai_server: OpenAIServer, status: int) -> None:
    openai_server.script([http_error(status), answer(GOOD)])
    analyzer = LangChainAnalyzer(settings_for(openai_server, max_retries=1, investigation="off"))
    diagnosis = await analyzer.analyse(make_ctx(), TARGETS, EVIDENCE)
    assert diagnosis.engine is Engine.LLM and len(openai_server.requests) == 2


@pytest.mark.parametrize("status", [400, 401, 404])
async def test_client_errors_are_not_retried(openai_server: OpenAIServer, status: int) -> None:
    openai_server.script([http_error(status, type_="invalid_request_error"), answer(GOOD)])
    analyzer = LangChainAnalyzer(settings_for(openai_server, max_retries=3, investigation="off"))
    with pytest.raises(LLMHTTPError):
        await analyzer.analyse(make_ctx(), TARGETS, EVIDENCE)
    assert len(openai_server.requests) == 1


def test_retryable_is_false_for_timeouts() -> None:
    import httpx
    import openai

    request = httpx.Request("POST", "http://x")
    assert not retryable(openai.APITimeoutError(request))
    assert not retryable(TimeoutError())
    assert retryable(openai.APIConnectionError(request=request))


async def test_connection_refused_is_retried_then_fails() -> None:
    settings = LLMSettings(base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=2,
                           timeout_s=2, investigation="off", prime_prompt_cache=False)
    started = time.monotonic()
    with pytest.raises(LLMHTTPError, match="connection failed"):
        await LangChainAnalyzer(settings).analyse(make_ctx(), TARGETS, EVIDENCE)
    assert time.monotonic() - started >= 1.4  # backoff 0.5 s + 1 s between the three attempts


async def test_base_url_alone_sends_a_placeholder_key(openai_server: OpenAIServer) -> None:
    openai_server.script([answer(GOOD)])
    settings = LLMSettings(base_url=openai_server.url, model="local", investigation="off",
                           max_retries=0, prime_prompt_cache=False)
    diagnosis = await LangChainAnalyzer(settings).analyse(make_ctx(), TARGETS, EVIDENCE)
    assert diagnosis.engine is Engine.LLM
    assert openai_server.requests[0].headers["authorization"] == "Bearer sk-no-key-required"


# --- the prompted investigation --------------------------------------------------------------


async def test_no_prompted_round_when_the_evidence_has_no_gap(openai_server: OpenAIServer) -> None:
    openai_server.script([answer(GOOD)])
    tools = FakeTools()
    analyzer = LangChainAnalyzer(settings_for(openai_server, investigation="prompted"), tools)
    diagnosis = await analyzer.analyse(make_ctx(), TARGETS, EVIDENCE)
    assert diagnosis.engine is Engine.LLM and diagnosis.tool_calls == []
    assert len(openai_server.requests) == 1  # the answer, at once
    assert tools.logs == [] and tools.states == [] and tools.queries == []


async def test_the_prompted_round_names_the_gap(openai_server: OpenAIServer) -> None:
    openai_server.script([content('{"tool": "none"}'), answer(GOOD)])
    analyzer = LangChainAnalyzer(settings_for(openai_server, investigation="prompted"),
                                 FakeTools())
    await analyzer.analyse(make_ctx(), TARGETS, GAPPY)
    ask = openai_server.requests[0].messages[-1]["content"]
    assert "does not show: the state of container api" in ask


async def test_prompted_tool_round(openai_server: OpenAIServer) -> None:
    openai_server.script([
        content('{"tool": "container_logs", "args": {"name": "api", "tail": 20}}'),
        content('<tool_call>{"name": "container_state", "arguments": {"name": "api"}}'
                "</tool_call>"),
        content('{"tool": "none"}'),
        answer(GOOD),
    ])
    tools = FakeTools()
    analyzer = LangChainAnalyzer(settings_for(openai_server, investigation="prompted"), tools)
    diagnosis = await analyzer.analyse(make_ctx(), TARGETS, GAPPY)

    assert tools.logs == [("api", 20)] and tools.states == ["api"]
    assert [c["tool"] for c in diagnosis.tool_calls] == ["container_logs", "container_state"]
    first, second, _third, final = openai_server.requests
    # No native tools are offered; the protocol is in the static system prompt and the round
    # asks for JSON of the protocol's schema.
    assert "tools" not in first.body
    assert '"tool": "none"' in first.messages[0]["content"]
    assert first.body["response_format"]["json_schema"]["name"] == "ToolRequest"
    # The tool result goes back as delimited, neutralised data.
    result = second.messages[-1]["content"]
    assert "<tool_result>" in result and "Killed: out of memory" in result
    assert "</alert_data>" not in result
    assert "tool_result" in final.text() and "response_format" in final.body


async def test_prompted_requests_are_data_not_instructions(openai_server: OpenAIServer) -> None:
    openai_server.script([
        content('{"tool": "container_logs", "args": {"name": "database"}}'),
        content('{"tool": "restart_container", "args": {"name": "api"}}'),
        answer(GOOD),
    ])
    tools = FakeTools()
    analyzer = LangChainAnalyzer(settings_for(openai_server, investigation="prompted"), tools)
    diagnosis = await analyzer.analyse(make_ctx(), TARGETS, GAPPY)
    assert tools.logs == [] and tools.states == []  # nothing outside the resolved targets runs
    assert "not a resolved target" in openai_server.requests[1].messages[-1]["content"]
    # An action name is not a tool: the investigation ends there, the answer is still asked for.
    assert "unknown tool" in str(diagnosis.tool_calls[-1]["error"])
    assert len(openai_server.requests) == 3 and diagnosis.engine is Engine.LLM


async def test_prompted_rounds_are_bounded_by_max_tool_calls(
        openai_server: OpenAIServer) -> None:
    openai_server.script([content('{"tool": "query_prometheus", "args": {"promql": "up"}}')],
                         repeat_last=True)
    tools = FakeTools()
    analyzer = LangChainAnalyzer(settings_for(openai_server, investigation="prompted",
                                              max_tool_calls=2), tools)
    with pytest.raises(LLMInvalidOutput, match="missing summary"):  # a tool request, again
        await analyzer.analyse(make_ctx(), TARGETS, GAPPY)
    assert tools.queries == ["up", "up"]
    assert len(openai_server.requests) == 3  # two rounds, one final request


# --- sre-agent eval ------------------------------------------------------------------------


def _eval(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **env}
    full.pop("SRE_AGENT_LLM__API_KEY", None)
    return subprocess.run([str(Path(sys.executable).parent / "sre-agent"), "eval", *args], cwd=REPO,
                          env=full, capture_output=True, text=True, timeout=300)


def test_eval_fails_when_the_llm_never_answered() -> None:
    env = {"SRE_AGENT_LLM__BASE_URL": f"http://127.0.0.1:{free_port()}/v1",
           "SRE_AGENT_LLM__MAX_RETRIES": "0", "SRE_AGENT_LLM__TIMEOUT_S": "2"}
    done = _eval(env, "--engine", "llm")
    assert done.returncode == 3, done.stdout + done.stderr
    assert "the LLM never answered" in done.stderr
    assert "llm connection error x3" in done.stderr and "llm breaker open x" in done.stderr
    assert "LLM answers 0/" in done.stdout


def test_eval_reports_the_llm_and_combined_engines(openai_server: OpenAIServer) -> None:
    openai_server.script([answer(GOOD)], repeat_last=True)
    env = {"SRE_AGENT_LLM__BASE_URL": openai_server.url, "SRE_AGENT_LLM__MAX_RETRIES": "0",
           "SRE_AGENT_LLM__INVESTIGATION": "off"}
    llm = _eval(env, "--engine", "llm", "--json")
    combined = _eval(env, "--engine", "combined", "--json")
    rules = _eval({}, "--json")
    # The scripted answer proposes start_container on "api" everywhere; targets differ, so
    # llm-alone is wrong on most scenarios, the combined engine keeps the rules' accuracy.
    out = {name: json.loads(p.stdout) for name, p in
           (("llm", llm), ("combined", combined), ("rules", rules))}
    assert out["llm"]["llm_answers"] == out["llm"]["scenarios"]
    assert out["llm"]["valid_output_rate"] == 1.0 and out["llm"]["fallbacks"] == 0
    assert out["combined"]["action_accuracy"] >= out["rules"]["action_accuracy"]
    assert out["combined"]["unsafe"] == 0
    assert out["llm"]["action_accuracy"] < out["rules"]["action_accuracy"]
    assert out["llm"]["tokens_per_incident_mean"] == 120
    assert "latency_ms_p95" in out["combined"] and "fallbacks_by_reason" in out["combined"]
