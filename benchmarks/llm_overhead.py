"""The agent's own overhead around one LLM call: LangChain + OpenAI SDK + our prompt/validation.

Starts the scripted OpenAI-protocol server (tests/support/openai_server.py) with zero delay and
times, for each structured-output method, N ``LangChainAnalyzer.analyse`` calls (no tools: one
HTTP request each) and N calls through ``FallbackAnalyzer``. Baselines on the same server: a
bare ``httpx`` POST of the same request body (transport + server), and the server's own
handling time (recorded inside the handler). Overhead = analyse time - server handling time;
the part that is ours + LangChain's = analyse time - bare httpx time. Writes
benchmarks/results/llm_overhead.json.

    .venv/bin/python benchmarks/llm_overhead.py [--calls 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.openai_server import OpenAIServer, answer, running_openai_server

from benchmarks.common import machine, percentile, write_result
from sre_agent.analysis.chain import FallbackAnalyzer
from sre_agent.analysis.llm import LangChainAnalyzer
from sre_agent.config import LLMSettings, StructuredOutputMethod
from sre_agent.domain.diagnosis import Diagnosis, Engine
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget

GOOD = {"summary": "api is down", "probable_cause": "exited", "category": "availability",
        "severity": "critical", "confidence": 0.8, "evidence": ["up == 0"],
        "proposed_actions": [{"kind": "start_container", "target": "api", "reason": "exited"}],
        "issue_detected": True, "requires_immediate_action": True}
CTX = AlertContext(incident_id="bench", group_key="g", alerts=[{
    "status": "firing", "labels": {"alertname": "TargetDown", "job": "api"},
    "annotations": {"summary": "target down"}}])
TARGETS = [ResolvedTarget(name="api", via="label:container", verified=True)]
EVIDENCE = [Evidence(source="docker", name="api", status=EvidenceStatus.OK,
                     data={"status": "exited", "exit_code": 137})]


class Rules:
    name = "rules"

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        return Diagnosis(summary="rules", engine=Engine.RULES)


def summary_ms(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values) * 1000, 3),
            "p90": round(percentile(values, 90) * 1000, 3),
            "min": round(min(values) * 1000, 3), "n": len(values)}


async def time_calls(server: OpenAIServer, call: Any, calls: int) -> tuple[list[float],
                                                                           list[float]]:
    for _ in range(3):  # warm-up: imports, connection pool, schema conversion caches
        await call()
    server.handling_s.clear()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        await call()
        times.append(time.perf_counter() - started)
    return times, list(server.handling_s)


async def main(calls: int) -> dict[str, Any]:
    result: dict[str, Any] = {"machine": machine(), "calls": calls, "methods": {}}
    with running_openai_server() as server:
        server.script([answer(GOOD)], repeat_last=True)
        settings = LLMSettings(api_key=SecretStr("sk-bench"), base_url=server.url,
                               model="bench", max_retries=0, timeout_s=10)

        # Baseline: the same request body through a bare httpx client.
        await LangChainAnalyzer(settings).analyse(CTX, TARGETS, EVIDENCE)
        body = server.requests[-1].body
        async with httpx.AsyncClient(timeout=10) as client:
            async def bare() -> None:
                response = await client.post(f"{server.url}/chat/completions", json=body)
                response.json()

            bare_times, bare_server = await time_calls(server, bare, calls)
        result["bare_httpx_ms"] = summary_ms(bare_times)
        result["server_handling_ms"] = summary_ms(bare_server)

        for method in StructuredOutputMethod:
            s = settings.model_copy(update={"structured_output_method": method})
            analyzer = LangChainAnalyzer(s)
            chain = FallbackAnalyzer(analyzer, Rules(), calls_per_minute=10_000,
                                     hard_timeout_s=10)

            async def direct(a: LangChainAnalyzer = analyzer) -> None:
                d = await a.analyse(CTX, TARGETS, EVIDENCE)
                assert d.engine is Engine.LLM

            async def chained(c: FallbackAnalyzer = chain) -> None:
                d = await c.analyse(CTX, TARGETS, EVIDENCE)
                assert d.engine is Engine.LLM, d.fallback_reason

            direct_times, direct_server = await time_calls(server, direct, calls)
            chain_times, _ = await time_calls(server, chained, calls)
            median_direct = statistics.median(direct_times)
            result["methods"][method.value] = {
                "analyse_ms": summary_ms(direct_times),
                "through_chain_ms": summary_ms(chain_times),
                "server_handling_ms": summary_ms(direct_server),
                "overhead_vs_server_ms": round(
                    (median_direct - statistics.median(direct_server)) * 1000, 3),
                "overhead_vs_bare_httpx_ms": round(
                    (median_direct - statistics.median(bare_times)) * 1000, 3),
            }
    result["note"] = ("Zero-delay scripted server on 127.0.0.1, one HTTP request per analysis "
                      "(no tools). overhead_vs_server = what the agent adds around the model's "
                      "own time (client stack + HTTP + our prompt building and validation); "
                      "overhead_vs_bare_httpx = what LangChain, the OpenAI SDK and our code add "
                      "over a bare httpx POST of the same body. A tool round adds one such "
                      "request per round.")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    outcome = asyncio.run(main(args.calls))
    path = write_result("llm_overhead", outcome)
    import json

    print(json.dumps(outcome, indent=2))
    print(f"written to {path}")
