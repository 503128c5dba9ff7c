"""Before/after of one replica's webhook acknowledgement: the same `serve --role api` (no
worker: the api's own cost) run from different source trees, alternating rounds, each on a
fresh PostgreSQL database; p50 at concurrency 1 and the agent process's CPU per request (from
/proc). A variant is NAME=PYTHONPATH (empty: this tree), e.g. a `git archive` of the base
commit's src plus a directory whose uvloop/httptools packages raise ImportError (to measure the
base as it ran, on asyncio and h11). `--profile PREFIX` records py-spy (--gil, raw stacks).
Writes benchmarks/results/webhook_ack_ab.json.

    .venv/bin/python benchmarks/webhook_ack_ab.py --variants "before=/tmp/base/src:/tmp/nouv;after="
"""
# ruff: noqa: E702, E501, B023, ASYNC220, ASYNC251, UP031
import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.postgres import start_cluster

from benchmarks.common import (
    PYTHON,
    ROOT,
    drive,
    free_port,
    machine,
    start_server,
    stop,
    write_result,
)
from benchmarks.webhook_throughput import TOKEN, body


def env_for(url, pp, role):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    env.update(SRE_AGENT_DATABASE_URL=url, SRE_AGENT_WEBHOOK_TOKEN=TOKEN, SRE_AGENT_LOG_LEVEL="WARNING",
               SRE_AGENT_MODE="observe")
    if pp:
        env["PYTHONPATH"] = pp
    return env

def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")

async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--variants", required=True)  # name=pythonpath;name2=pp
    p.add_argument("--db", default="pg")
    p.add_argument("--role", default="api")
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--c", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--profile", default="")
    a = p.parse_args()
    variants = [v.split("=", 1) for v in a.variants.split(";")]
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    gen = start_cluster(); cluster = next(gen)
    res = {n: [] for n, _ in variants}
    raw = []
    load0 = os.getloadavg()[0]
    off = 0
    try:
      with tempfile.TemporaryDirectory() as tmp:
        for r in range(a.rounds):
            for name, pp in variants:
                off += 1_000_000
                url = cluster.create_database() if a.db == "pg" else f"sqlite:///{tmp}/{off}.db"
                port = free_port()
                proc = start_server([PYTHON, "-m", "sre_agent", "serve", "--port", str(port), "--role", a.role],
                                    env_for(url, pp, a.role), f"http://127.0.0.1:{port}/ready", timeout=60)
                u = f"http://127.0.0.1:{port}/webhook/alertmanager"
                try:
                    await drive(u, lambda i: body(off + i), 100, 1, headers)
                    spy = None
                    if a.profile:
                        spy = subprocess.Popen([str(ROOT / ".venv/bin/py-spy"), "record", "-r", "250", "--gil", "-f", "raw",
                                                "-o", f"{a.profile}-{name}-{r}.txt", "-p", str(proc.pid)],
                                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                        time.sleep(1)
                    c0 = cpu_of(proc.pid)
                    out = await drive(u, lambda i: body(off + 100 + i), a.n, a.c, headers)
                    cpu = (cpu_of(proc.pid) - c0) / a.n * 1000
                    if spy:
                        spy.send_signal(2); spy.wait(30)
                finally:
                    stop(proc)
                res[name].append((out["p50_ms"], cpu, out["per_second"]))
                raw.append({"variant": name, "round": r, "pythonpath": pp, **out,
                            "cpu_ms_per_request": round(cpu, 3), "load_avg": os.getloadavg()[0]})
                print(f"r{r} {name}: p50 {out['p50_ms']} ms p99 {out['p99_ms']} cpu/req {cpu:.2f} ms  {out['per_second']}/s load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        gen.close()
    summary = {name: {"ack_p50_ms": statistics.median(x[0] for x in v),
                      "cpu_ms_per_request": round(statistics.median(x[1] for x in v), 3),
                      "per_second_c%d" % a.c: statistics.median(x[2] for x in v)} for name, v in res.items()}
    print(summary)
    write_result("webhook_ack_ab", {"machine": machine(), "load_avg_start": load0, "role": a.role,
                                    "db": a.db, "requests": a.n, "concurrency": a.c,
                                    "summary": summary, "raw": raw})
asyncio.run(main())
