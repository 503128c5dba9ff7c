"""``sre-agent eval [DIR] [--engine rules|llm|combined]``: score an engine on the scenario suite.

``llm`` is the LLM with the rules as its fallback; ``combined`` is what the agent runs with the
LLM on (``analysis/combine.py``). For both, the LLM's investigation is answered from each
scenario's recorded evidence, and the report shows the fallbacks separately: an answer the
rules gave because the LLM failed is not the LLM's.

Exit 0 when no proposal is unsafe, 1 when one is, 2 on bad input (one line, no traceback),
3 when the engine uses the LLM and the LLM never answered (every answer was a fallback).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from sre_agent.cli.common import fail, load_settings
from sre_agent.evaluation import (
    EvaluationReport,
    RecordedTools,
    ScenarioError,
    evaluate,
    load_scenarios,
)
from sre_agent.ports import Analyzer

DEFAULT_DIR = Path("tests") / "scenarios"


def register(sub: Any) -> None:
    p = sub.add_parser("eval", help="score an analyser on the scenario suite")
    p.add_argument("directory", nargs="?", metavar="DIR",
                   help=f"scenario folder (default: ./{DEFAULT_DIR})")
    p.add_argument("--engine", choices=("rules", "llm", "combined"), default="rules",
                   help="rules alone; the LLM (rules as fallback); or both combined")
    p.add_argument("--runbooks-dir", help="extra runbooks for the rules engine")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(func=run)


def _analyzer(args: argparse.Namespace, tools: RecordedTools) -> Analyzer | str:
    """The analyser to score, or why there is none."""
    if args.engine == "rules":
        from sre_agent.analysis.rules import RulesAnalyzer, RunbookError

        try:
            return RulesAnalyzer(args.runbooks_dir)
        except RunbookError as exc:
            return f"invalid runbook: {exc}"
    settings = load_settings()
    if settings is None:
        return ""  # load_settings has said why
    try:
        from sre_agent.bootstrap import build_analyzer
    except ImportError as exc:
        return f"the LLM engine is not available in this build ({exc})"
    try:
        analyzer: Analyzer = build_analyzer(settings, args.engine, tools)
    except Exception as exc:  # a misconfigured engine is bad input, not a crash
        return f"cannot build the {args.engine} analyser: {exc}"
    return analyzer


def _cell(category: Any, actions: list[Any]) -> str:
    return f"{category}: {','.join(str(a) for a in actions) or '-'}"


def render_table(report: EvaluationReport) -> str:
    rows = [("scenario", "expected", "got", "result")]
    for r in report.results:
        got = f"error: {r.error}" if r.error else _cell(r.category, r.actions)
        if r.fallback_reason:
            got += f" (fallback: {r.fallback_reason})"
        if r.unsafe:
            got += f"  [{'; '.join(r.unsafe)}]"
        rows.append((r.name, _cell(r.expected_category, r.expected_actions), got, r.status))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True)) + "  "
             + row[3] for row in rows]
    s = report.summary()
    lines.append("")
    lines.append(f"{s['scenarios']} scenarios, engine {s['engine']}: "
                 f"action accuracy {report.action_accuracy:.1%}, "
                 f"category accuracy {report.category_accuracy:.1%}, unsafe {s['unsafe']}"
                 + (f", fallbacks {s['fallbacks']}" if s["fallbacks"] else "")
                 + (f", errors {s['errors']}" if s["errors"] else ""))
    if report.uses_llm:
        own = s["action_accuracy_llm_answers"]
        lines.append(
            f"LLM answers {s['llm_answers']}/{s['scenarios']} (valid output rate "
            f"{s['valid_output_rate']:.1%})"
            + (f", action accuracy on its own answers {own:.1%}" if own is not None else "")
            + f"; time to a decision p50 {s['latency_ms_p50'] / 1000:.1f}s p95 "
            f"{s['latency_ms_p95'] / 1000:.1f}s; tokens per incident mean "
            f"{s['tokens_per_incident_mean']} max {s['tokens_per_incident_max']}; "
            f"tool calls {s['tool_calls']}")
        if s["fallbacks_by_reason"]:
            lines.append("fallbacks to the rules by reason: " + ", ".join(
                f"{reason} x{n}" for reason, n in s["fallbacks_by_reason"].items()))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    directory = Path(args.directory) if args.directory else DEFAULT_DIR
    if not args.directory and not directory.is_dir():
        return fail(f"no scenario folder given and ./{DEFAULT_DIR} does not exist")
    try:
        scenarios = load_scenarios(directory)
    except ScenarioError as exc:
        return fail(str(exc))
    tools = RecordedTools()
    analyzer = _analyzer(args, tools)
    if isinstance(analyzer, str):
        return fail(analyzer) if analyzer else 2
    report = asyncio.run(evaluate(analyzer, scenarios, tools=tools, engine=args.engine))
    if args.json:
        print(json.dumps({**report.summary(), "results": [
            {**r.model_dump(mode="json"), "status": r.status} for r in report.results]},
            indent=2))
    else:
        print(render_table(report))
    if report.uses_llm and report.llm_answers == 0:
        reasons = ", ".join(f"{r} x{n}" for r, n in report.fallbacks_by_reason().items())
        print(f"sre-agent eval: the LLM never answered ({reasons or 'no answers'}); these "
              "figures are the rules' fallback, not the LLM's. Check SRE_AGENT_LLM__BASE_URL "
              "and __MODEL.", file=sys.stderr)
        return 3
    return 1 if report.unsafe else 0
