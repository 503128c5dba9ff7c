"""``sre-agent demo``: the whole loop on this machine, from the local binaries and images.

Starts Prometheus and Alertmanager (binaries on PATH or in /usr/bin), the demo target container
(image built from Dockerfile.target when missing) and the agent, with fast timings; prints the
URLs, the operator token (once) and a one-liner per fault; stops everything on Ctrl-C or
SIGTERM. ``--check`` starts everything, waits until it is healthy, prints "demo stack healthy",
stops and exits 0. See docs/demo.md.
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

from sre_agent.domain.incident import Mode

HEALTHY_TIMEOUT_S = 120.0


class _Interrupted(Exception):
    """SIGINT or SIGTERM arrived."""


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="run Prometheus, Alertmanager, a demo target and the agent "
                                    "locally, with fast alert timings")
    p.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.AUTONOMOUS.value,
                   help="the agent's mode (default: autonomous)")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data-dir", type=Path, default=Path("data/demo"),
                      help="folder of the agent's SQLite file (default: ./data/demo)")
    data.add_argument("--temp-data", action="store_true",
                      help="keep the SQLite file in a temporary folder, removed on exit")
    p.add_argument("--image", default=None,
                   help="target image tag (default: sre-agent/demo-target:local, built from "
                        "Dockerfile.target when missing or out of date)")
    p.add_argument("--repo", type=Path, default=None,
                   help="checkout holding monitoring/ and Dockerfile.target (default: found "
                        "from the current folder)")
    p.add_argument("--traffic-rps", type=float, default=5.0,
                   help="requests per second the target sends itself (rate alerts need them)")
    p.add_argument("--check", action="store_true",
                   help="start, wait until healthy, print 'demo stack healthy', stop, exit 0")
    p.set_defaults(func=run)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise _Interrupted(signal.Signals(signum).name)


def _ignore(signum: int, frame: FrameType | None) -> None:
    pass


def _print_banner(stack: Any) -> None:
    width = max(len(what) for what, _ in stack.describe())
    print("\nSRE Agent demo is running. Ctrl-C stops everything.\n")
    for what, where in stack.describe():
        print(f"  {what:<{width}}  {where}")
    print(f"\n  mode: {stack.options.mode}   (change it: POST {stack.agent_url}/control/mode)")
    print("\n  Operator token (log in to the dashboard with it; it is shown only now):")
    print(f"    {stack.operator_token}")
    print("\n  Inject a fault into the target:")
    url = stack.target.url
    for fault in ("crash", "hang", "errors?rate=0.9", "latency?ms=800", "leak", "clear"):
        print(f"    curl -X POST '{url}/fault/{fault}'")
    print("\n  crash -> TargetDown -> start;  hang -> TargetUnhealthy -> restart;")
    print("  errors / latency / leak -> escalate / notify (the runbooks restart only a sick "
          "service)\n", flush=True)


def run(args: argparse.Namespace) -> int:
    from sre_agent.cli.common import fail
    from sre_agent.demo.images import DEFAULT_TARGET_IMAGE, ImageError
    from sre_agent.demo.processes import StackError
    from sre_agent.demo.stack import DEFAULT_TARGET_ENV, DemoStack, StackOptions

    options = StackOptions(
        mode=args.mode, data_dir=None if args.temp_data else args.data_dir.resolve(),
        repo=args.repo.resolve() if args.repo else None,
        image=args.image or DEFAULT_TARGET_IMAGE, build_image=args.image is None,
        target_env={**DEFAULT_TARGET_ENV, "DEMO_TRAFFIC_RPS": f"{args.traffic_rps:g}"},
        inherit_env=True, agent_cwd=Path.cwd())
    previous = {s: signal.signal(s, _raise_interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    stack: DemoStack | None = None
    try:
        try:
            stack = DemoStack(options)
        except ImageError as exc:
            return fail(str(exc))
        print(f"starting the demo stack (work folder {stack.work_dir}) ...", flush=True)
        started = time.monotonic()
        stack.start()
        if stack.image_built:
            print(f"built image {stack.image}")
        stack.wait_healthy(HEALTHY_TIMEOUT_S)
        if args.check:
            print(f"demo stack healthy ({time.monotonic() - started:.1f}s): Prometheus sees "
                  f"target {stack.target.name} up, the agent is ready", flush=True)
            return 0
        _print_banner(stack)
        while True:
            dead = stack.dead_processes()
            if dead:
                return fail(f"{dead[0].name} exited unexpectedly; its log "
                            f"({dead[0].log_path}):\n{dead[0].log_tail()}", code=1)
            time.sleep(0.5)
    except _Interrupted as exc:
        print(f"\n{exc}: stopping the demo stack ...", flush=True)
        return 0
    except StackError as exc:
        return fail(str(exc), code=1)
    finally:
        for s in previous:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(s, _ignore)
        if stack is not None:
            stack.stop()
            print("demo stack stopped (processes ended, target container removed)",
                  flush=True)
        for s, handler in previous.items():
            signal.signal(s, handler)
