"""Webhook acknowledgement by role: `all` on SQLite, `all` on PostgreSQL, and `api` alone on
PostgreSQL (its worker in another process), each against the bare FastAPI endpoint.

For each configuration and round: start the agent (and, for `api`, a worker on the same fresh
database), warm both up, then in one run drive the bare endpoint and the agent alike: latency
at concurrency 1 (one 1-alert notification at a time: the time to acknowledge) and throughput at
concurrency 32. Ratios are agent / bare from the same round; rounds alternate the
configurations (all-sqlite, all-pg, api-pg, all-sqlite, ...), and each figure reported is the
median over the rounds. Concurrency 1 uses the httpx generator of webhook_throughput.py;
concurrency 32 uses ``wrk`` (benchmarks/wrk_load.py, Debian's package ``wrk``) when it is
installed: the one-process httpx generator saturates near what the bare endpoint answers, which
made every ratio ~1. Same payloads everywhere. Writes benchmarks/results/webhook_roles.json.

    .venv/bin/python benchmarks/webhook_roles.py [--rounds 3] [--c1 300] \
        [--generator wrk|httpx] [--seconds 5] [--requests 1000 (httpx)] \
        [--variants "before:SRE_AGENT_X=0,SRE_AGENT_Y=0;after:"]

``--variants`` runs every configuration once per variant in each round (alternating), the
variant's settings in the environment of the agent and its worker: an A/B of settings in one
run. Its results are keyed ``config/variant``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import (
    PYTHON,
    code_label,
    drive,
    free_port,
    machine,
    start_server,
    stop,
    write_result,
)
from benchmarks.procstats import cpu_seconds
from benchmarks.webhook_throughput import TOKEN, body
from benchmarks.wrk_load import available as wrk_available
from benchmarks.wrk_load import drive_wrk

CONFIGS = ("all-sqlite", "all-postgresql", "api-postgresql")
TARGETS = {"all": {"ack_p50_ms_max": 6.0, "throughput_ratio_min": 0.5},
           "api": {"ack_p50_ms_max": 4.0, "throughput_ratio_min": 0.7}}


def agent_env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    return {**env, "SRE_AGENT_DATABASE_URL": url, "SRE_AGENT_WEBHOOK_TOKEN": TOKEN,
            "SRE_AGENT_LOG_LEVEL": "WARNING", "SRE_AGENT_MODE": "observe", **extra}


def start_agent(url: str, role: str,
                extra: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_server([PYTHON, "-m", "sre_agent", "serve", "--port", str(port),
                         "--role", role], agent_env(url, **extra), f"{base}/ready", timeout=60)
    return proc, base


def parse_variants(spec: str) -> dict[str, dict[str, str]]:
    """``name:K=V,K=V;name2:`` -> {name: {K: V}}; empty: one unnamed variant."""
    variants: dict[str, dict[str, str]] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, _, assignments = part.partition(":")
        variants[name] = dict(a.split("=", 1) for a in assignments.split(",") if a)
    return variants or {"": {}}


async def one_round(config: str, url: str, bare: tuple[str, int], args: argparse.Namespace,
                    offset: int, extra: dict[str, str]) -> dict[str, Any]:
    bare_url, bare_pid = bare
    role = config.split("-")[0]
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        agent, base = start_agent(url, role, extra)
        procs.append(agent)
        if role == "api":
            worker, _ = start_agent(url, "worker", extra)
            procs.append(worker)
        agent_url = f"{base}/webhook/alertmanager"
        n = offset
        await drive(agent_url, lambda i: body(n + i), 200, 8, headers)  # warm-up
        await drive(bare_url, lambda i: body(n + i), 200, 8, headers)
        out: dict[str, Any] = {}
        out["bare_c1"] = await drive(bare_url, lambda i: body(n + 1_000 + i), args.c1, 1,
                                     headers)
        out["agent_c1"] = await drive(agent_url, lambda i: body(n + 1_000 + i), args.c1, 1,
                                      headers)
        if args.generator == "wrk":  # C, two threads: not bounded by a Python client
            for name, target, pids in (("bare_c32", bare_url, {"bare": bare_pid}),
                                       ("agent_c32", agent_url,
                                        {"agent": procs[0].pid, "worker": procs[-1].pid}
                                        if role == "api" else {"agent": procs[0].pid})):
                cpu_before = {k: cpu_seconds(pid) for k, pid in pids.items()}
                out[name] = await asyncio.to_thread(
                    drive_wrk, target, base=n + 10_000, seconds=args.seconds, concurrency=32,
                    threads=2, token=TOKEN)
                out[name]["statuses"] = {"2xx": out[name]["requests"] - out[name]["non_2xx"],
                                         "non_2xx": out[name]["non_2xx"]}
                # CPU per request, by process: steadier than throughput on a shared host
                out[name]["cpu_ms_per_request"] = {
                    k: round(1e3 * (cpu_seconds(pid) - cpu_before[k])
                             / max(out[name]["requests"], 1), 3) for k, pid in pids.items()}
        else:
            out["bare_c32"] = await drive(bare_url, lambda i: body(n + 10_000 + i),
                                          args.requests, 32, headers)
            out["agent_c32"] = await drive(agent_url, lambda i: body(n + 10_000 + i),
                                           args.requests, 32, headers)
        out["throughput_ratio"] = round(out["agent_c32"]["per_second"]
                                        / out["bare_c32"]["per_second"], 3)
        out["ack_p50_ratio"] = round(out["agent_c1"]["p50_ms"] / out["bare_c1"]["p50_ms"], 2)
        out["load_avg"] = os.getloadavg()[0]
        return out
    finally:
        for proc in procs:
            stop(proc)


def summary(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    def med(get: Any) -> float:
        return round(statistics.median(get(r) for r in rounds), 3)
    return {
        "rounds": len(rounds),
        "ack_p50_ms": med(lambda r: r["agent_c1"]["p50_ms"]),
        "ack_p99_ms": med(lambda r: r["agent_c1"]["p99_ms"]),
        "bare_ack_p50_ms": med(lambda r: r["bare_c1"]["p50_ms"]),
        "per_second_c32": med(lambda r: r["agent_c32"]["per_second"]),
        "bare_per_second_c32": med(lambda r: r["bare_c32"]["per_second"]),
        "throughput_ratio": med(lambda r: r["throughput_ratio"]),
        "throughput_ratio_runs": [r["throughput_ratio"] for r in rounds],
        "cpu_ms_per_request_c32": {k: med(lambda r, k=k: r["agent_c32"]["cpu_ms_per_request"][k])
                                   for k in rounds[0]["agent_c32"].get("cpu_ms_per_request", {})},
        "bare_cpu_ms_per_request_c32": med(
            lambda r: r["bare_c32"].get("cpu_ms_per_request", {}).get("bare", 0.0)),
        "ack_p50_ms_runs": [r["agent_c1"]["p50_ms"] for r in rounds],
        # 200 (correlated) and 202 (queued) both acknowledge; anything else is counted here
        "non_200": sum(n for r in rounds for k in ("agent_c1", "agent_c32")
                       for code, n in r[k]["statuses"].items() if not str(code).startswith("2")),
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--c1", type=int, default=300)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--generator", choices=("wrk", "httpx"),
                        default="wrk" if wrk_available() else "httpx",
                        help="load generator at concurrency 32 (wrk: Debian's package)")
    parser.add_argument("--seconds", type=float, default=5.0, help="wrk run length")
    parser.add_argument("--variants", default="", help="name:K=V,K=V;name2: (A/B of settings)")
    args = parser.parse_args()
    variants = parse_variants(args.variants)
    runs = [(c, v) for c in args.configs.split(",") if c for v in variants]
    configs = [f"{c}/{v}" if v else c for c, v in runs]
    from tests.support.postgres import start_cluster

    result: dict[str, Any] = {"machine": machine(), "code": code_label(),
                              "load_avg_start": os.getloadavg()[0],
                              "requests_c32": args.requests, "requests_c1": args.c1,
                              "generator_c32": (f"wrk -t2 -c32 for {args.seconds} s"
                                                if args.generator == "wrk"
                                                else "httpx, one process"),
                              "variants": variants}
    raw: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    clusters = start_cluster()
    cluster = next(clusters)
    with tempfile.TemporaryDirectory() as tmp:
        bare_port = free_port()
        bare = start_server([PYTHON, "-m", "uvicorn", "benchmarks.bare_app:app", "--port",
                             str(bare_port), "--log-level", "warning", "--no-access-log"], {},
                            f"http://127.0.0.1:{bare_port}/docs")
        bare_url = f"http://127.0.0.1:{bare_port}/webhook/alertmanager"
        try:
            for rnd in range(args.rounds):
                for k, (config, (base_config, variant)) in enumerate(zip(configs, runs,
                                                                         strict=True)):
                    url = (f"sqlite:///{tmp}/r{rnd}-{k}.db" if base_config.endswith("sqlite")
                           else str(cluster.create_database()))
                    one = await one_round(base_config, url, (bare_url, bare.pid), args,
                                          offset=(rnd * 100 + k) * 1_000_000,
                                          extra=variants[variant])
                    raw[config].append(one)
                    print(f"round {rnd} {config}: ack p50 {one['agent_c1']['p50_ms']} ms "
                          f"(bare {one['bare_c1']['p50_ms']}), c32 ratio "
                          f"{one['throughput_ratio']}, load {one['load_avg']:.1f}", flush=True)
        finally:
            stop(bare)
            clusters.close()  # stops the cluster (the generator's finally)
    result["configs"] = {c: summary(raw[c]) for c in configs}
    result["raw"] = raw
    result["targets"] = {c: TARGETS[c.split("-")[0]] for c in configs}
    result["met"] = {c: {
        "ack_p50": result["configs"][c]["ack_p50_ms"] <= TARGETS[c.split("-")[0]][
            "ack_p50_ms_max"],
        "throughput_ratio": result["configs"][c]["throughput_ratio"] >= TARGETS[
            c.split("-")[0]]["throughput_ratio_min"]} for c in configs}
    path = write_result("webhook_roles", result)
    print(json.dumps({k: v for k, v in result.items() if k != "raw"}, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main())
