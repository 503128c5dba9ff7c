"""The ``sre-agent`` command: serve, db, audit, and the offline tools."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sre_agent.cli import analyze, audit, db, demo, runbooks, serve
from sre_agent.cli import eval as eval_command

COMMANDS = (serve, db, audit, analyze, eval_command, demo, runbooks)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sre-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
