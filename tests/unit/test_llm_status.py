"""One truth for the LLM's state (/status JSON and the dashboard), and third-party logs as JSON."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import structlog

from sre_agent.analysis.chain import FallbackAnalyzer, llm_state
from sre_agent.domain.diagnosis import Diagnosis, Engine
from sre_agent.domain.evidence import AlertContext, Evidence, ResolvedTarget
from sre_agent.observability import configure_logging
from sre_agent.web.views import COMPONENT_STATUS, badge_for, component_rows, llm_badge


class Failing:
    name = "llm"

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        raise RuntimeError("boom")


class Rules:
    name = "rules"

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        return Diagnosis(summary="rules", engine=Engine.RULES)


CTX = AlertContext(incident_id="i", group_key="g", alerts=[])


@pytest.mark.parametrize("failures", [0, 1, 3])
async def test_json_and_page_derive_the_same_state(failures: int) -> None:
    chain = FallbackAnalyzer(Failing(), Rules(), breaker_failures=3, model="qwen")
    for _ in range(failures):
        await chain.analyse(CTX, [], [])
    status = chain.status()
    state, _detail = llm_state(status)
    assert status["state"] == state == {0: "healthy", 1: "degraded", 3: "breaker_open"}[failures]
    # The page's badge is the badge of the JSON's state, never a different word.
    badge, _ = llm_badge(status)
    assert badge == badge_for(COMPONENT_STATUS, state)
    row = component_rows({"llm": status, "components": {"llm": {"status": state}}})[1]
    assert row.name == "LLM" and row.badge == badge
    assert status["calls_total"] == failures and status["failures_total"] == failures
    assert status["model"] == "qwen"


def test_disabled_state() -> None:
    chain = FallbackAnalyzer(None, Rules())
    assert chain.status()["state"] == "disabled"
    assert llm_state({"configured": False}) == ("disabled", "runbook rules only")


def test_third_party_log_lines_are_json(capsys: pytest.CaptureFixture[str]) -> None:
    saved = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    configure_logging("json", "INFO")
    try:
        logging.getLogger("openai._base_client").info(
            "Retrying request to %s in %f seconds", "/chat/completions", 0.5)
        logging.getLogger("httpx").info("HTTP Request: POST http://x 200")  # below its floor
        structlog.get_logger("sre_agent.test").info("own_event", api_key="sk-secret-123")
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        parsed: list[dict[str, Any]] = [json.loads(line) for line in lines]
    finally:  # the rest of the suite logs to its own streams
        structlog.configure(**saved)
        root.handlers, root.level = saved_handlers, saved_level
    assert parsed[0]["logger"] == "openai._base_client"
    assert parsed[0]["event"].startswith("Retrying request to /chat/completions")
    assert parsed[0]["level"] == "info" and "timestamp" in parsed[0]
    assert parsed[1]["event"] == "own_event" and parsed[1]["api_key"] == "[redacted]"
    assert len(parsed) == 2
