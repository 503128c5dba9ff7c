"""The alert storm of storm.py under two (or more) settings, alternated round by round.

Single storm runs on this shared host vary 1.5x within minutes, so settings are compared only
within alternated rounds: each round runs the storm once per variant (a variant is settings
put in the agents' environment), in observe mode, on one agent on SQLite or ``--replicas 2``
on PostgreSQL. Reports each run and the medians by variant. Writes
benchmarks/results/storm_ab_<name>.json.

    .venv/bin/python benchmarks/storm_ab.py --name ingest_first --rounds 3 \
        --variants "off:SRE_AGENT_INGEST_FIRST_MAX_DEFER_S=0;on:" [--replicas 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import code_label, machine, write_result
from benchmarks.procstats import machine_size
from benchmarks.storm import run_storm, storm_bodies, verdicts
from benchmarks.webhook_roles import parse_variants


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True, help="results: storm_ab_<name>.json")
    parser.add_argument("--variants", required=True, help="name:K=V,K=V;name2:")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--per-group", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    variants = parse_variants(args.variants)
    bodies = storm_bodies(args.groups, args.per_group)
    runs: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        for name, settings in variants.items():
            saved = {k: os.environ.get(k) for k in settings}
            os.environ.update(settings)  # start_server passes os.environ on to the agents
            try:
                run = await run_storm("observe", bodies, args.concurrency,
                                      args.groups * args.per_group, args.groups,
                                      args.replicas)
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            w = run["webhook"]
            checks = [v for v in verdicts(run) if not v.startswith("webhook p99")]
            failed = [v for v in checks if ": met" not in v]
            runs.append({"round": rnd, "variant": name, "posts_per_s": w["per_second"],
                         "p50_ms": w["p50_ms"], "p99_ms": w["p99_ms"],
                         "agent_cpu_ms_per_post": run["agent_cpu_s"]["per_post_ms"],
                         "drained_s_after_last_ack": run["backlog_drained_s_after_last_ack"],
                         "load_1m_before": run["load_average_before"][0],
                         "checks_all_met": not failed, "checks_failed": failed})
            print(json.dumps(runs[-1]), flush=True)
    result = {
        "machine": {**machine(), **machine_size()}, "code": code_label(),
        "setup": (f"benchmarks/storm_ab.py --replicas {args.replicas}: the storm of storm.py "
                  f"({args.groups} x {args.per_group} alerts, each delivered twice, "
                  f"{args.concurrency} senders), observe mode, {args.rounds} alternated rounds"),
        "variants": variants, "runs": runs,
        "median_p99_ms": {n: statistics.median(r["p99_ms"] for r in runs if r["variant"] == n)
                          for n in variants},
        "median_p50_ms": {n: statistics.median(r["p50_ms"] for r in runs if r["variant"] == n)
                          for n in variants},
        "median_drained_s": {n: statistics.median(r["drained_s_after_last_ack"] or 0.0
                                                  for r in runs if r["variant"] == n)
                             for n in variants},
    }
    path = write_result(f"storm_ab_{args.name}", result)
    print(json.dumps({k: v for k, v in result.items() if k != "runs"}, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main())
