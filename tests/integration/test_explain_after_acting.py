"""The LLM never delays a fix it cannot change: the whole agent with a slow LLM.

The real ChatOpenAI client talks to a real local OpenAI-protocol server that takes 3 s per
answer; the pipeline runs for real on SQLite in autonomous mode with the combined engine. The
scenario is a container that exited, which the runbook understands and the evidence backs: the
start runs before the LLM has answered, and the LLM's summary arrives after as
``DiagnosisExplained``, folded into the incident. Only the Docker backend, the resolver and
the evidence source are fakes of our own Protocols (the real-Docker time to recover with the
real model is ``benchmarks/time_to_recover.py --llm-url local``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.bootstrap import Fakes, build_analysis, build_services
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.evidence import AlertContext, Evidence, ResolvedTarget
from sre_agent.evaluation import load_scenario
from tests.conftest import make_settings
from tests.support.fakes import FakeBackend, FakeResolver, FakeVerifier
from tests.support.openai_server import OpenAIServer, answer, delay, running_openai_server

pytestmark = pytest.mark.integration
SCENARIO = load_scenario(Path(__file__).resolve().parents[1] / "scenarios"
                         / "container-killed-exited.yaml")
LLM_S = 3.0
PLAN: dict[str, Any] = {
    "summary": "The api container was killed and has exited.",
    "probable_cause": "the process in api stopped", "category": "availability",
    "severity": "warning", "confidence": 0.7, "evidence": ["api is exited"],
    "proposed_actions": [{"kind": "silence_alert", "target": None, "reason": "noise"}]}


class RecordedEvidence:
    name = "docker"

    async def collect(self, ctx: AlertContext, targets: list[ResolvedTarget]) -> list[Evidence]:
        return [e for e in SCENARIO.evidence if e.source != "target"]


@pytest.fixture(scope="module")
def llm_server() -> Iterator[OpenAIServer]:
    with running_openai_server() as server:
        yield server


def _services(tmp_path: Path, llm_server: OpenAIServer, **llm: Any) -> tuple[Any, FakeBackend]:
    settings = make_settings(tmp_path, mode="autonomous", llm={
        "api_key": "sk-test-local-123", "base_url": llm_server.url, "timeout_s": 20,
        "max_retries": 0, "max_tool_calls": 0, **llm})
    backend = FakeBackend()
    analysis = build_analysis(settings, use_docker=False)
    services = build_services(settings, backends={k: backend for k in ActionKind},
                              fakes=Fakes(analyzer=analysis.analyzer,
                                          resolver=FakeResolver(list(SCENARIO.targets)),
                                          sources=[RecordedEvidence()], verifier=FakeVerifier()))
    return services, backend


async def _run(services: Any) -> tuple[dict[str, Any], list[str], float, float]:
    """The incident, its event types in order, seconds to the action's end and to the
    explanation."""
    app = create_app(services.settings, services=services)
    loop = asyncio.get_running_loop()
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        started = loop.time()
        posted = await c.post("/webhook/alertmanager",
                              json=SCENARIO.notification.model_dump(mode="json", by_alias=True))
        incident_id = posted.json()["incidents"][0]
        acted_at = explained_at = None
        while loop.time() - started < 60 and explained_at is None:
            types = [e["type"] for e in (await c.get(f"/incidents/{incident_id}")).json()[
                "events"]]
            if acted_at is None and "ActionSucceeded" in types:
                acted_at = loop.time() - started
            if "DiagnosisExplained" in types:
                explained_at = loop.time() - started
            await asyncio.sleep(0.05)
        detail = (await c.get(f"/incidents/{incident_id}")).json()
        page = (await c.get(f"/incidents/{incident_id}",
                            headers={"accept": "text/html"})).text
    assert acted_at is not None and explained_at is not None, [e["type"] for e in
                                                               detail["events"]]
    detail["page"] = page
    return detail, [e["type"] for e in detail["events"]], acted_at, explained_at


async def test_the_fix_runs_before_the_slow_llm_answers(tmp_path: Path,
                                                        llm_server: OpenAIServer) -> None:
    llm_server.script([delay(LLM_S, answer(PLAN))], repeat_last=True)
    services, backend = _services(tmp_path, llm_server)
    detail, types, acted_at, explained_at = await _run(services)
    assert [(r.kind.value, r.target) for r in backend.executed] == [("start_container", "api")]
    assert acted_at < LLM_S <= explained_at, (acted_at, explained_at)
    assert types.index("ActionSucceeded") < types.index("DiagnosisExplained")
    produced = next(e["data"] for e in detail["events"] if e["type"] == "DiagnosisProduced")
    assert produced["explanation_pending"] and produced["engine"] == "rules"
    # The incident now shows the LLM's text; the actions and the gate's inputs are the rules'.
    dx = detail["diagnosis"]
    assert dx["summary"] == PLAN["summary"] and dx["explained_by"] == "llm"
    assert dx["proposed_actions"] == produced["proposed_actions"]
    # The explanation asked for the text alone: the actions were decided.
    final = llm_server.requests[-1]
    assert final.body["response_format"]["json_schema"]["schema"]["required"] == [
        "summary", "probable_cause", "evidence"]
    assert "decided already" in final.text()
    assert "the summary is the LLM&#39;s" in detail["page"] or \
        "the summary is the LLM's" in detail["page"]
    assert "sk-test-local-123" not in str(detail)


async def test_waiting_for_the_llm_is_a_setting(tmp_path: Path,
                                                llm_server: OpenAIServer) -> None:
    llm_server.script([delay(LLM_S, answer(PLAN))], repeat_last=True)
    services, backend = _services(tmp_path, llm_server, explain_after_acting=False)
    app = create_app(services.settings, services=services)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        posted = await c.post("/webhook/alertmanager",
                              json=SCENARIO.notification.model_dump(mode="json", by_alias=True))
        incident_id = posted.json()["incidents"][0]
        await services.runner.wait_idle(60)
        detail = (await c.get(f"/incidents/{incident_id}")).json()
    types = [e["type"] for e in detail["events"]]
    assert "DiagnosisExplained" not in types
    produced = next(e["data"] for e in detail["events"] if e["type"] == "DiagnosisProduced")
    assert produced["summary"] == PLAN["summary"] and not produced.get("explanation_pending")
    assert [(r.kind.value, r.target) for r in backend.executed] == [("start_container", "api")]
