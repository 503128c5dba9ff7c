"""``sre-agent runbooks check DIR`` and ``sre-agent runbooks explain PAYLOAD``.

``check`` validates user runbooks (YAML, schema, regexes, templates, action kinds, families)
and prints every problem with its file, runbook and field; exit 0 when clean, 1 on problems,
2 on bad usage. ``explain`` shows, for one Alertmanager notification, the classifier's view,
the runbooks tried in order and the one that answered (and why), the diagnosis, and what the
safety gate would decide for each proposal. Neither executes anything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from sre_agent.cli.common import fail, load_settings


def register(sub: Any) -> None:
    p = sub.add_parser("runbooks", help="check user runbooks, or explain how an alert matches")
    cmds = p.add_subparsers(dest="runbooks_command", required=True)
    c = cmds.add_parser("check", help="validate the runbooks in a directory")
    c.add_argument("directory", metavar="DIR", help="a folder of *.yml / *.yaml runbooks")
    c.set_defaults(func=check)
    e = cmds.add_parser("explain", help="which runbook or classifier rule matches a "
                                        "notification, and what the gate would decide")
    e.add_argument("payload", help="a JSON Alertmanager webhook notification ('-': stdin)")
    e.add_argument("--runbooks-dir", help="user runbooks (default: SRE_AGENT_RUNBOOKS_DIR)")
    e.add_argument("--offline", action="store_true",
                   help="gather no evidence (no Docker, Prometheus or HTTP probe)")
    e.add_argument("--json", action="store_true", help="print the result as JSON")
    e.set_defaults(func=explain)


def check(args: argparse.Namespace) -> int:
    from sre_agent.analysis.runbook_model import RunbookError, check_runbook_text, load_runbooks

    folder = Path(args.directory)
    if not folder.is_dir():
        return fail(f"{folder}: runbooks directory not found")
    files = sorted([*folder.glob("*.yml"), *folder.glob("*.yaml")])
    if not files:
        return fail(f"{folder}: no *.yml or *.yaml files", 1)
    shipped = {b.name for b in load_runbooks()}
    problems: list[str] = []
    seen: dict[str, str] = {}
    count = 0
    for file in files:
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: cannot read: {exc}")
            continue
        books, found = check_runbook_text(text, str(file))
        problems += found
        for book in books:
            if book.name in seen:
                problems.append(f"{file}: runbook {book.name!r}: name: also defined in "
                                f"{seen[book.name]}")
            seen[book.name] = str(file)
            count += 1
            note = " (replaces the shipped runbook)" if book.name in shipped else ""
            print(f"ok  {file}: {book.name} (priority {book.priority}, {book.category}){note}")
    for line in problems:
        print(f"error  {line}")
    if not problems:
        try:  # the layered load the agent does, so that what passes here also loads there
            load_runbooks(folder)
        except RunbookError as exc:
            problems.append(str(exc))
            print(f"error  {exc}")
    print(f"{count} runbook(s) in {len(files)} file(s), {len(problems)} problem(s)")
    return 1 if problems else 0


def _explanation(args: argparse.Namespace) -> dict[str, Any] | int:
    from sre_agent.analysis.rules import RulesAnalyzer, RunbookError
    from sre_agent.bootstrap import build_analysis, build_backends
    from sre_agent.cli.analyze import load_notification
    from sre_agent.domain.control import ControlState
    from sre_agent.domain.evidence import Evidence
    from sre_agent.pipeline.simulate import simulate, simulated_context

    notification = load_notification(args.payload)
    if isinstance(notification, str):
        return fail(notification)
    settings = load_settings()
    if settings is None:
        return 2
    try:
        rules = RulesAnalyzer(args.runbooks_dir or settings.runbooks_dir)
    except RunbookError as exc:
        return fail(f"invalid runbook: {exc}")
    if args.offline:
        resolver, sources = None, []
    else:
        analysis = build_analysis(settings, use_llm=False)
        resolver, sources = analysis.resolver, analysis.sources
    result = asyncio.run(simulate(
        notification, analyzer=rules, resolver=resolver, sources=sources,
        policy=settings.policy(), control=ControlState(mode=settings.mode, paused=False),
        queries_for=rules.queries_for, available_kinds=frozenset(build_backends(settings))))
    ctx = simulated_context(notification)
    evidence = [Evidence.model_validate(e) for e in result["evidence"]]
    facts_class = rules.classification(ctx)
    return {"classifier": facts_class, "tried": rules.trace(ctx, evidence), **result}


def explain(args: argparse.Namespace) -> int:
    out = _explanation(args)
    if isinstance(out, int):
        return out
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    inc, diag, k = out["incident"], out["diagnosis"], out["classifier"]
    print(f"alert     : {', '.join(inc['alertnames'])} ({inc['severity']}, "
          f"{inc['alerts']} alert(s)); targets: "
          f"{', '.join(t['name'] for t in inc['targets']) or 'none resolved'}")
    print(f"classifier: {k['category']} (confidence {k['confidence']:.2f}, family "
          f"{k['family'] or 'none'}{', stateful' if k['stateful'] else ''}"
          f"{', says down' if k['down'] else ''}): {k['reason']}")
    missed = [r["runbook"] for r in out["tried"] if r["outcome"] == "no match"]
    if missed:
        print(f"no match  : {len(missed)} runbook(s) tried first: {', '.join(missed)}")
    for row in out["tried"]:
        if row["outcome"] != "no match":
            print(f"matched   : {row['runbook']} (priority {row['priority']}, {row['origin']}): "
                  f"{row['outcome'].removeprefix('matched: ')}")
    print(f"diagnosis : [{diag['category']}/{diag['severity']}, confidence "
          f"{diag['confidence']:.2f}, runbook {diag['runbook']}] {diag['summary']}")
    if diag.get("probable_cause"):
        print(f"cause     : {diag['probable_cause']}")
    for line in diag.get("evidence", []):
        print(f"  evidence: {line}")
    if not out["decisions"]:
        print("gate      : nothing proposed")
    for d in out["decisions"]:
        print(f"gate      : {d['kind']} {d['target'] or ''} -> {d['decision']} ({d['reason']})")
    return 0
