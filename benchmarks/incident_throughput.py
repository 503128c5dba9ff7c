"""Distinct incidents analysed per second: N alert groups, each its own incident, rules only,
evidence from real containers on the real Docker engine (and a real Prometheus), posted to real
``python -m sre_agent serve`` processes on SQLite and on PostgreSQL.

Set-up: ``--containers`` busybox httpd containers (labelled ``sre-agent.managed=true``, each
with a published port and an ``sre-agent.health-url``), scraped by a real Prometheus. Every
group is one ``TargetDown`` notification of one alert naming one of those containers (its
``container`` label) with its own ``job``, fingerprint and groupKey, so every group is a new
incident: the agent resolves the target from the Docker container list, inspects the container
and reads its log tail, queries Prometheus, probes the health URL, runs the rules and records
EvidenceCollected, DiagnosisProduced and the proposals (default mode ``approval``, as a new
user gets it: nothing is restarted).

Measured per case: from the first POST to the moment the store holds a DiagnosisProduced for
every incident (polled every 50 ms, so +-50 ms), and incidents per second over that span; plus
the time until every replica's backlog is 0 (the remediation stage done too), the agents' CPU
seconds, the load average before and after (the machine is shared), and checks: one incident
per group, one diagnosis per incident, and the Docker evidence of every incident OK (no
timeout or error counted as an analysis).

Cases: ``--backends sqlite,postgresql`` x ``--workers 1,2,4,8`` (SRE_AGENT_WORKERS) with one
replica, and ``--replicas 2`` on PostgreSQL (two serve processes on one database, role all,
the POSTs spread round-robin; the runner's leases share the work). Writes
benchmarks/results/incident_throughput.json.

    .venv/bin/python benchmarks/incident_throughput.py [--groups 1280] [--workers 1,2,4,8] \
        [--backends sqlite,postgresql] [--replicas 1,2] [--containers 8] [--no-prometheus] \
        [--profile DIR]

``--profile DIR`` records a py-spy profile of the first replica of every case into DIR:
collapsed stacks of the threads on a CPU (``py-spy record --format raw``; with
``PROFILE_GIL=1``, of the thread holding the GIL, whose attribution counts threads waiting on
the database in psycopg; ``pip install py-spy``; needs ptrace rights).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.docker_helpers import ContainerJanitor, docker_client
from tests.support.payloads import alert, notification

from benchmarks.common import PYTHON, free_port, machine, start_server, stop, write_result
from benchmarks.procstats import load_average, machine_size

TOKEN = "bench-throughput-token"
TARGET_PER_S = 50.0
CONCURRENCY = 8
NOTE = ("Incidents/s = groups / (last DiagnosisProduced - first POST); the POSTs themselves "
        "take part of that span (ingest shares the process). Ratios between cases come from "
        "one run each on a 2-core machine shared with other agents: the load average is "
        "recorded with each case.")


@contextlib.contextmanager
def targets(count: int) -> Iterator[list[tuple[str, int]]]:
    """``count`` running httpd containers: (name, published port)."""
    client = docker_client()
    with ContainerJanitor(client) as janitor:
        out: list[tuple[str, int]] = []
        for _ in range(count):
            port = free_port()
            box = janitor.run_busybox(
                ["sh", "-c", "mkdir -p /www && echo ok > /www/health && "
                 "echo started && httpd -f -p 8080 -h /www"],
                prefix="tp", ports={"8080/tcp": ("127.0.0.1", port)},
                labels={"sre-agent.managed": "true",
                        "sre-agent.health-url": f"http://127.0.0.1:{port}/health"})
            out.append((box.name, port))
        yield out
    client.close()


@contextlib.contextmanager
def prometheus(boxes: list[tuple[str, int]], enabled: bool) -> Iterator[str | None]:
    if not enabled:
        yield None
        return
    from tests.support.prometheus import running_prometheus, wait_for_value

    work = Path(tempfile.mkdtemp(prefix="tp-prom-"))
    try:
        with running_prometheus(work, [f"127.0.0.1:{p}" for _, p in boxes]) as prom:
            wait_for_value(prom.url, "count(up)", lambda v: v == len(boxes))
            yield prom.url
    finally:
        shutil.rmtree(work, ignore_errors=True)


@contextlib.contextmanager
def postgres() -> Iterator[Any]:
    from tests.support.postgres import start_cluster

    gen = start_cluster()
    cluster = next(gen)
    try:
        yield cluster
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


def bodies(groups: int, boxes: list[tuple[str, int]], tag: str) -> list[bytes]:
    out = []
    for i in range(groups):
        name, port = boxes[i % len(boxes)]
        instance = f"127.0.0.1:{port}"
        a = alert(name="TargetDown", fingerprint=f"{tag}{i:06d}",
                  labels={"container": name, "job": "target", "instance": instance,
                          "group": f"{tag}-{i:06d}"},
                  annotations={"summary": f"throughput group {i}"},
                  expr=f'up{{job="target",instance="{instance}"}} == 0')
        out.append(json.dumps(notification([a], group_key=f'{{}}:{{tp="{tag}-{i:06d}"}}'))
                   .encode())
    return out


async def post_all(urls: list[str], payloads: list[bytes]) -> dict[int, int]:
    statuses: dict[int, int] = {}
    counter = iter(range(len(payloads)))
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(timeout=60) as client:
        async def sender() -> None:
            for i in counter:
                r = await client.post(urls[i % len(urls)], content=payloads[i], headers=headers)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        await asyncio.gather(*(sender() for _ in range(CONCURRENCY)))
    return statuses


def count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


async def wait_for(engine: sa.Engine, expected: int, timeout: float) -> float | None:
    """perf_counter() when the log holds ``expected`` DiagnosisProduced events."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        n = await asyncio.to_thread(
            count, engine, "SELECT count(*) FROM events WHERE type = 'DiagnosisProduced'")
        if n >= expected:
            return time.perf_counter()
        await asyncio.sleep(0.05)
    return None


async def wait_backlogs(bases: list[str], timeout: float) -> float | None:
    deadline = time.perf_counter() + timeout
    async with httpx.AsyncClient(timeout=30) as client:
        while time.perf_counter() < deadline:
            backlogs = [(await client.get(f"{b}/status")).json()["backlog"] for b in bases]
            if not any(backlogs):
                return time.perf_counter()
            await asyncio.sleep(0.1)
    return None


def evidence_tally(engine: sa.Engine) -> tuple[dict[str, int], dict[str, float]]:
    """How many evidence items of each source:status, and each source's median duration (ms,
    wall clock inside the agent: waiting for a thread counts)."""
    tally: dict[str, int] = {}
    durations: dict[str, list[float]] = {}
    with engine.connect() as conn:
        for (raw,) in conn.execute(sa.text(
                "SELECT data FROM events WHERE type = 'EvidenceCollected'")):
            for ev in json.loads(raw)["evidence"]:
                key = f"{ev['source']}:{ev['status']}"
                tally[key] = tally.get(key, 0) + 1
                if ev.get("duration_ms") is not None:
                    durations.setdefault(ev["source"], []).append(float(ev["duration_ms"]))
    medians = {k: round(statistics.median(v), 1) for k, v in sorted(durations.items())}
    return dict(sorted(tally.items())), medians


def store_checks(engine: sa.Engine, groups: int) -> dict[str, Any]:
    counts = {
        "incidents": count(engine, "SELECT count(*) FROM incidents"),
        "diagnoses": count(engine, "SELECT count(*) FROM events "
                                   "WHERE type = 'DiagnosisProduced'"),
        "incidents_with_two_diagnoses": count(engine, (
            "SELECT count(*) FROM (SELECT incident_id FROM events WHERE "
            "type = 'DiagnosisProduced' GROUP BY incident_id HAVING count(*) > 1) AS d")),
        "events_total": count(engine, "SELECT count(*) FROM events"),
    }
    tally, durations = evidence_tally(engine)
    return {"store": counts, "evidence_statuses": tally,
            "evidence_median_duration_ms": durations, "checks": {
        "one_incident_per_group": counts["incidents"] == groups,
        "one_diagnosis_per_incident": counts["diagnoses"] == groups
        and counts["incidents_with_two_diagnoses"] == 0,
        "docker_evidence_ok_for_every_incident": tally.get("docker:ok", 0) == groups,
        "target_resolved_for_every_incident": tally.get("target:ok", 0) == groups,
    }}


def cpu_seconds(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of the process so far, all threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / ticks, int(fields[12]) / ticks


# Where a sampled stack's time is counted: the first pattern (in this order) that its frames
# contain. Stacks of the thread holding the GIL (py-spy --gil), so this is Python CPU.
PROFILE_BUCKETS = [
    ("store write: ingest of a notification", "SqlEventStore.ingest"),
    ("store write: projections", "apply_events"),
    ("store write: append (hash, insert)", "SqlEventStore._append_in"),
    ("store write: transaction, leases, progress", "SqlPlumbing._run_batch"),
    ("store read", "SqlPlumbing._read"),
    ("docker: container list", "DockerEvidence.list_containers"),
    ("docker: inspect + logs", "DockerEvidence._state_sync"),
    ("prometheus queries (thread)", "PrometheusEvidence._"),
    ("http probe", "HttpProbe.probe"),
    ("webhook route", "alertmanager_webhook"),
    ("rules engine", "RulesAnalyzer"),
    ("analyse stage (evidence, events)", "AnalyseStage.run"),
    ("remediation stage", "Remediation"),
    ("runner", "PipelineRunner"),
    ("thread hand-offs (to_thread)", "to_thread"),
    ("thread pool", "_worker (concurrent"),
    ("HTTP server, middleware, event loop", "_run_once"),
]


def profile_breakdown(path: Path) -> dict[str, Any]:
    """Shares of the samples in a py-spy raw (collapsed) profile, by PROFILE_BUCKETS."""
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        bucket = next((name for name, pattern in PROFILE_BUCKETS if pattern in stack), "other")
        counts[bucket] = counts.get(bucket, 0) + int(n)
    shares = {k: round(v / total, 3) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])}
    return {"samples": total, "share": shares}


def py_spy(pid: int, out: Path, seconds: int) -> subprocess.Popen[bytes] | None:
    exe = Path(PYTHON).with_name("py-spy")
    if not exe.exists():
        print("py-spy not installed: no profile", file=sys.stderr)
        return None
    return subprocess.Popen([str(exe), "record", "--pid", str(pid), "--duration",
                             str(seconds), "--rate", "100",
                             *(["--gil"] if os.environ.get("PROFILE_GIL") == "1" else []),
                             "--format", "raw",
                             "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def run_case(backend: str, workers: int, replicas: int, groups: int,
                   boxes: list[tuple[str, int]], prom_url: str | None, pg: Any,
                   profile: Path | None, timeout: float) -> dict[str, Any]:
    tag = f"{backend[:2]}w{workers}r{replicas}t{int(time.time()) % 100000}"
    with tempfile.TemporaryDirectory() as tmp:
        url = pg.create_database() if backend == "postgresql" else f"sqlite:///{tmp}/tp.db"
        env = {"SRE_AGENT_DATABASE_URL": url, "SRE_AGENT_WEBHOOK_TOKEN": TOKEN,
               "SRE_AGENT_LOG_LEVEL": "WARNING", "SRE_AGENT_WORKERS": str(workers)}
        if prom_url:
            env["SRE_AGENT_PROMETHEUS_URL"] = prom_url
        agents = []
        bases = []
        try:
            for _ in range(replicas):
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                agents.append(start_server(
                    [PYTHON, "-m", "sre_agent", "serve", "--port", str(port)], env,
                    f"{base}/ready", timeout=60))
                bases.append(base)
            engine = sa.create_engine(url.replace("sqlite:///", "sqlite:///", 1))
            payloads = bodies(groups, boxes, tag)
            spy = (py_spy(agents[0].pid, profile / f"{tag}.folded.txt",
                          int(timeout)) if profile else None)
            load_before = load_average()
            cpu0 = [cpu_seconds(a.pid) for a in agents]
            started = time.perf_counter()
            statuses = await post_all([f"{b}/webhook/alertmanager" for b in bases], payloads)
            posted = time.perf_counter()
            done = await wait_for(engine, groups, timeout)
            drained = await wait_backlogs(bases, timeout)
            cpu1 = [cpu_seconds(a.pid) for a in agents]
            load_after = load_average()
            profiled: dict[str, Any] | None = None
            if spy is not None and profile is not None:
                spy.send_signal(2)  # SIGINT: py-spy writes what it has
                spy.wait(60)
                out = profile / f"{tag}.folded.txt"
                profiled = profile_breakdown(out) if out.exists() else None
            checks = store_checks(engine, groups)
            engine.dispose()
        finally:
            for a in agents:
                stop(a)
    span = (done - started) if done else None
    result = {
        "backend": backend, "workers": workers, "replicas": replicas, "groups": groups,
        "load_average_before": load_before, "load_average_after": load_after,
        "post_statuses": statuses, "posting_s": round(posted - started, 3),
        "first_post_to_last_diagnosis_s": round(span, 3) if span else None,
        "incidents_per_s": round(groups / span, 1) if span else None,
        "first_post_to_backlog_empty_s": round(drained - started, 3) if drained else None,
        "agent_cpu_s": [{"user": round(b[0] - a[0], 2), "system": round(b[1] - a[1], 2)}
                        for a, b in zip(cpu0, cpu1, strict=True)],
        "agent_cpu_ms_per_incident": round(
            sum(sum(b) - sum(a) for a, b in zip(cpu0, cpu1, strict=True)) / groups * 1000, 2),
        **checks,
        **({"profile_gil": profiled} if profiled else {}),
    }
    print(json.dumps({k: result[k] for k in (
        "backend", "workers", "replicas", "incidents_per_s", "posting_s",
        "first_post_to_last_diagnosis_s", "agent_cpu_ms_per_incident",
        "load_average_before", "agent_cpu_s", "evidence_median_duration_ms")}), flush=True)
    return result


def verdicts(cases: list[dict[str, Any]]) -> list[str]:
    out = []
    for c in cases:
        rate = c["incidents_per_s"]
        ok = rate is not None and rate >= TARGET_PER_S and all(c["checks"].values())
        out.append(f"{c['backend']} workers={c['workers']} replicas={c['replicas']}: "
                   f"{rate} incidents/s (target >= {TARGET_PER_S:g}): "
                   f"{'met' if ok else 'NOT MET'}; load {c['load_average_before'][0]}")
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=1280)
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--replicas", default="1,2", help="replica counts (PostgreSQL only "
                        "beyond 1; run with the default workers setting and the best one)")
    parser.add_argument("--replica-workers", default="",
                        help="workers for the replica cases (default: every --workers value)")
    parser.add_argument("--containers", type=int, default=8)
    parser.add_argument("--no-prometheus", action="store_true")
    parser.add_argument("--profile", type=Path)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--output", default="incident_throughput")
    parser.add_argument("--label", default="this checkout",
                        help="what code the agents ran (e.g. 'main 0f4865a' with "
                        "PYTHONPATH=<that checkout>/src, which the serve processes inherit)")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    replica_counts = [int(r) for r in args.replicas.split(",")]
    replica_workers = ([int(w) for w in args.replica_workers.split(",")]
                       if args.replica_workers else workers)
    backends = args.backends.split(",")
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    cases: list[dict[str, Any]] = []
    with targets(args.containers) as boxes, prometheus(boxes, not args.no_prometheus) as prom, \
            contextlib.ExitStack() as stack:
        pg = stack.enter_context(postgres()) if "postgresql" in backends else None
        plan = [(b, w, 1) for b in backends for w in workers]
        if "postgresql" in backends:
            plan += [("postgresql", w, r) for r in replica_counts if r > 1
                     for w in replica_workers]
        for backend, w, r in plan:
            cases.append(await run_case(backend, w, r, args.groups, boxes, prom, pg,
                                        args.profile, args.timeout))
    result = {
        "machine": {**machine(), **machine_size()},
        "code": args.label,
        "setup": {"groups": args.groups, "containers": args.containers,
                  "prometheus": not args.no_prometheus, "post_concurrency": CONCURRENCY,
                  "mode": "approval (default)", "engine": "rules"},
        "target_incidents_per_s_min": TARGET_PER_S,
        "note": NOTE,
        "cases": cases,
        "verdicts": verdicts(cases),
    }
    path = write_result(args.output, result)
    print(*result["verdicts"], sep="\n")
    print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main())
