"""The scenario suite on a real model: rules, LLM and combined engines side by side.

By default starts llama.cpp's ``llama-server`` (built by ``scripts/setup-local-llm.sh``) with
Qwen2.5-Coder-1.5B-Instruct Q4_K_M on a free port, 2 threads, and runs every scenario of
``tests/scenarios`` once through the LLM (the agent's own ``FallbackAnalyzer``, rules as
fallback, the investigation answered from each scenario's recorded evidence). The rules answer
each scenario too, and the combined engine's answer is ``combine(rules, llm)`` of those two
answers, exactly what ``--engine combined`` computes, so the model runs once per scenario.

Per engine: action and category accuracy, unsafe proposals, valid output rate, fallbacks by
reason, latency p50/p95, tokens per incident. The combined engine's latency is its time to a
decision: the rules' time where no LLM answer could change the actions (the agent acts on them
at once and the LLM explains after, ``combine.py`` rule 5), the LLM's time plus the rules'
elsewhere. Targets (2 cores, 1.5B): analysis p50 <= 8 s,
p95 <= 30 s, <= 1,500 tokens per incident; combined never below the rules on action
accuracy, zero unsafe proposals.

    .venv/bin/python benchmarks/llm_analysis.py                      # the local 1.5B model
    .venv/bin/python benchmarks/llm_analysis.py --base-url http://127.0.0.1:11434/v1 \\
        --model qwen2.5:1.5b --out llm_analysis_ollama               # Ollama, vLLM, ...
    SRE_AGENT_LLM__API_KEY=sk-... .venv/bin/python benchmarks/llm_analysis.py \\
        --base-url https://api.openai.com/v1 --model gpt-4o-mini --out llm_analysis_openai

Writes benchmarks/results/<out>.json (default ``llm_analysis``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.llama import find_parts, running_llama_server

from benchmarks.common import machine, write_result
from sre_agent.analysis.chain import FallbackAnalyzer
from sre_agent.analysis.combine import combine, llm_can_change_actions
from sre_agent.analysis.rules import RulesAnalyzer
from sre_agent.analysis.validation import validate_proposals
from sre_agent.config import LLMSettings
from sre_agent.domain.diagnosis import Diagnosis, Engine
from sre_agent.evaluation import (
    EvaluationReport,
    RecordedTools,
    ScenarioResult,
    load_scenarios,
    percentile,
    score,
)

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"p50_ms": 8000, "p95_ms": 30000, "tokens_per_incident": 1500}


@contextlib.contextmanager
def endpoint(args: argparse.Namespace) -> Iterator[tuple[str, str, str]]:
    """(base_url, model, description): the given endpoint, or a local llama-server."""
    if args.base_url:
        yield args.base_url, args.model, f"{args.model} at {args.base_url}"
        return
    server, model = find_parts()
    if server is None or model is None:
        sys.exit("llama-server or the model missing: run scripts/setup-local-llm.sh")
    with running_llama_server(server, model, threads=args.threads) as running:
        yield running.url, running.model, (
            f"{model.name} on llama.cpp llama-server ({server.resolve().name}), "
            f"{args.threads} threads, 1 slot")


def verdicts(reports: dict[str, dict[str, Any]],
             rows: list[dict[str, Any]] | None = None) -> list[str]:
    llm, rules, comb = reports["llm"], reports["rules"], reports["combined"]
    # Split by how the analysis ran: one answer call, or prompted tool rounds first (each round
    # re-sends the whole prompt, so an investigated incident costs a multiple of the tokens).
    split = []
    for label, picked in (("answered in one call", [r for r in rows or [] if not r["tool_calls"]]),
                          ("investigated first", [r for r in rows or [] if r["tool_calls"]])):
        if picked:
            top = max(r["tokens"] for r in picked)
            split.append((f"tokens per incident, {label} ({len(picked)} of {len(rows or [])})",
                          top <= TARGETS["tokens_per_incident"],
                          f"max {top}, {max(r['latency_ms'] for r in picked) / 1000:.1f} s at "
                          "most (target <= 1,500)"))
    ok = [
        ("analysis p50", llm["latency_ms_p50"] <= TARGETS["p50_ms"],
         f"{llm['latency_ms_p50'] / 1000:.1f} s (target <= 8 s)"),
        ("analysis p95", llm["latency_ms_p95"] <= TARGETS["p95_ms"],
         f"{llm['latency_ms_p95'] / 1000:.1f} s (target <= 30 s)"),
        ("tokens per incident", llm["tokens_per_incident_max"] <= TARGETS["tokens_per_incident"],
         f"mean {llm['tokens_per_incident_mean']}, max {llm['tokens_per_incident_max']} "
         "(target <= 1,500)"),
        *split,
        ("combined action accuracy >= rules", comb["action_accuracy"] >= rules["action_accuracy"],
         f"{comb['action_accuracy']:.1%} vs {rules['action_accuracy']:.1%}"),
        ("combined unsafe proposals", comb["unsafe"] == 0, f"{comb['unsafe']} (target 0)"),
    ]
    if "decided_without_llm" in comb:  # information: not a target of the issue
        ok.append(("combined time to a decision p50", True,
                   f"{comb['latency_ms_p50'] / 1000:.2f} s; {comb['decided_without_llm']} of "
                   f"{comb['scenarios']} decided without waiting for the LLM"))
    return [f"{name}: {text}: {'met' if met else 'NOT MET'}" for name, met, text in ok]


async def run(args: argparse.Namespace, base_url: str, model: str,
              partial: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    scenarios = load_scenarios(ROOT / "tests" / "scenarios")
    if args.limit:
        scenarios = scenarios[: args.limit]
    settings = LLMSettings(
        base_url=base_url, model=model, api_key=os.environ.get("SRE_AGENT_LLM__API_KEY"),
        timeout_s=args.timeout, max_retries=0, investigation=args.investigation,
        max_tool_calls=args.max_tool_calls, calls_per_minute=1_000_000,
        max_output_tokens=args.max_output_tokens)
    rules = RulesAnalyzer()
    tools = RecordedTools()
    llm = FallbackAnalyzer.from_settings(settings, rules, tools=tools, combine=False,
                                         hard_timeout_s=2 * args.timeout)
    results: dict[str, list[ScenarioResult]] = {"rules": [], "llm": [], "combined": []}
    rows: list[dict[str, Any]] = []
    for index, s in enumerate(scenarios, 1):
        tools.scenario = s
        ctx, targets, evidence = s.context(), list(s.targets), list(s.evidence)
        started = time.perf_counter()
        by_llm = await llm.analyse(ctx, targets, evidence)
        llm_ms = (time.perf_counter() - started) * 1000
        started = time.perf_counter()
        by_rules = await rules.analyse(ctx, targets, evidence)
        rules_ms = (time.perf_counter() - started) * 1000
        checked = validate_proposals(by_rules, targets)
        by_combined: Diagnosis = (
            validate_proposals(combine(checked, by_llm, evidence), targets)
            if by_llm.engine is Engine.LLM else by_llm)
        # The agent acts on a decisive runbook without waiting (combine.py, rule 5): there the
        # combined engine's time to a decision is the rules' time, and the LLM only explains.
        decided_first = not llm_can_change_actions(checked, [t.name for t in targets],
                                                   evidence)
        decision_ms = rules_ms if decided_first else llm_ms + rules_ms
        # What the agent itself asks of the LLM for this incident: where the runbook decided,
        # one explanation call (no investigation); elsewhere the full analysis above.
        agent_ms, agent_tokens = llm_ms, by_llm.tokens
        if decided_first and args.agent_view:
            started = time.perf_counter()
            explained = await llm.explain(ctx, targets, evidence, checked)
            agent_ms, agent_tokens = (time.perf_counter() - started) * 1000, explained.tokens
        for name, diagnosis, ms in (("rules", by_rules, rules_ms), ("llm", by_llm, llm_ms),
                                    ("combined", by_combined, decision_ms)):
            result = score(s, diagnosis)
            result.latency_ms = round(ms, 1)
            results[name].append(result)
        r_llm, r_comb = results["llm"][-1], results["combined"][-1]
        rows.append({"scenario": s.name, "expected": [str(a) for a in s.expected.actions],
                     "llm": [str(a) for a in r_llm.actions], "llm_category": r_llm.category,
                     "combined": [str(a) for a in r_comb.actions],
                     "action_engine": r_comb.action_engine, "latency_ms": round(llm_ms),
                     "decided_without_llm": decided_first,
                     "decision_ms": round(decision_ms, 1),
                     "tokens": by_llm.tokens, "tool_calls": r_llm.tool_calls,
                     "agent_llm_ms": round(agent_ms), "agent_llm_tokens": agent_tokens,
                     "fallback_reason": by_llm.fallback_reason})
        print(f"[{index}/{len(scenarios)}] {s.name}: {llm_ms / 1000:.1f}s {by_llm.tokens} tok "
              f"llm={rows[-1]['llm']} combined={rows[-1]['combined']} "
              f"expected={rows[-1]['expected']}"
              + (f" fallback={by_llm.fallback_reason}" if by_llm.fallback_reason else ""),
              flush=True)
        partial(summarise(results, rows, len(scenarios)))  # a long run keeps what it measured
    return summarise(results, rows, len(scenarios))


def summarise(results: dict[str, list[ScenarioResult]], rows: list[dict[str, Any]],
              planned: int) -> dict[str, Any]:
    reports = {name: EvaluationReport(engine=name, results=res).summary()
               for name, res in results.items()}
    reports["combined"]["decided_without_llm"] = sum(
        1 for r in rows if r.get("decided_without_llm"))
    agent = [r for r in rows if "agent_llm_ms" in r]
    if agent:
        ms = [float(r["agent_llm_ms"]) for r in agent]
        tokens = [r["agent_llm_tokens"] for r in agent]
        reports["agent"] = {"incidents": len(agent), "latency_ms_p50": percentile(ms, 50),
                            "latency_ms_p95": percentile(ms, 95),
                            "tokens_per_incident_mean": round(sum(tokens) / len(tokens)),
                            "tokens_per_incident_max": max(tokens)}
    return {"scenarios": len(rows), "scenarios_planned": planned, "complete": len(rows) == planned,
            "reports": reports, "rows": rows, "verdicts": verdicts(reports, rows)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint (default: start "
                                           "the local llama-server)")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--investigation", default="prompted",
                        choices=("native", "prompted", "off"))
    parser.add_argument("--max-tool-calls", type=int, default=2)
    parser.add_argument("--max-output-tokens", type=int, default=512)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="first N scenarios only")
    parser.add_argument("--out", default="llm_analysis")
    parser.add_argument("--no-agent-view", dest="agent_view", action="store_false",
                        help="skip the explanation calls the agent makes where a runbook "
                             "decided (the 'agent' figures)")
    args = parser.parse_args()
    config = {"investigation": args.investigation, "max_tool_calls": args.max_tool_calls,
              "max_output_tokens": args.max_output_tokens, "temperature": 0.0,
              "timeout_s": args.timeout}
    load_before = [round(x, 2) for x in os.getloadavg()]
    with endpoint(args) as (base_url, model, description):
        started = time.perf_counter()

        def write(body: dict[str, Any]) -> Path:
            return write_result(args.out, {
                "machine": machine(), "endpoint": description, "config": config,
                "load_before": load_before,
                "wall_s": round(time.perf_counter() - started, 1), **body})

        result = asyncio.run(run(args, base_url, model, write))
        path = write(result)
    for line in result["verdicts"]:
        print(line)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
