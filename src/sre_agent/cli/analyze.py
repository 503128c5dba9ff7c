"""``sre-agent analyze PAYLOAD.json``: analyse one notification offline; executes nothing."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sre_agent.cli.common import fail, load_settings
from sre_agent.domain.alertmanager import WebhookNotification


def register(sub: Any) -> None:
    p = sub.add_parser("analyze", help="analyse one Alertmanager notification offline")
    p.add_argument("payload", help="a JSON file holding an Alertmanager webhook notification "
                                   "('-' for standard input)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--no-llm", action="store_true", help="rules only, even if an LLM is set")
    p.set_defaults(func=run)


def _read(path: str) -> str:
    import sys

    return sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")


def _print_human(result: dict[str, Any]) -> None:
    inc, diag = result["incident"], result["diagnosis"]
    print(f"incident : {inc['title']} ({inc['severity']}, {inc['alerts']} alert(s))")
    targets = ", ".join(t["name"] + ("" if t["verified"] else " (unverified)")
                        for t in inc["targets"]) or "unresolved"
    print(f"targets  : {targets}")
    engine = diag["engine"] + (f" (fallback: {diag['fallback_reason']})"
                               if diag.get("fallback_reason") else "")
    print(f"diagnosis: [{diag['category']}/{diag['severity']}, confidence "
          f"{diag['confidence']:.2f}, {engine}] {diag['summary']}")
    if diag.get("match_reason"):
        print(f"matched  : {diag['match_reason']}")
    for line in diag.get("evidence", []):
        print(f"  evidence: {line}")
    if not result["decisions"]:
        print("actions  : none proposed")
    for d in result["decisions"]:
        print(f"action   : {d['kind']} {d['target'] or ''} -> {d['decision']} ({d['reason']})")


def load_notification(path: str) -> WebhookNotification | str:
    """An Alertmanager notification from a JSON file ('-': standard input), or why not."""
    try:
        raw = json.loads(_read(path))
    except FileNotFoundError:
        return f"no such file: {path}"
    except (OSError, UnicodeDecodeError) as exc:
        return f"cannot read {path}: {exc}"
    except json.JSONDecodeError as exc:
        return f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}"
    except RecursionError:
        return f"{path}: JSON nested too deeply"
    try:
        return WebhookNotification.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{path} is not an Alertmanager notification: {where}: {first['msg']}"


def run(args: argparse.Namespace) -> int:
    notification = load_notification(args.payload)
    if isinstance(notification, str):
        return fail(notification)
    settings = load_settings()
    if settings is None:
        return 2
    from sre_agent.bootstrap import build_analysis, build_backends
    from sre_agent.domain.control import ControlState
    from sre_agent.pipeline.simulate import simulate

    analysis = build_analysis(settings, use_llm=not args.no_llm)
    result = asyncio.run(simulate(
        notification, analyzer=analysis.analyzer, resolver=analysis.resolver,
        sources=analysis.sources, policy=settings.policy(),
        control=ControlState(mode=settings.mode, paused=False),
        queries_for=analysis.queries_for,
        available_kinds=frozenset(build_backends(settings))))
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=False))
    else:
        _print_human(result)
    return 0
