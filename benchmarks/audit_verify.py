"""Audit verification of a 100,000-event log (or 1,000,000 on PostgreSQL), and tamper detection.

Builds a SQLite store (or, with ``--postgres``, a database in a throwaway PostgreSQL cluster
from tests/support/postgres.py; with ``--database-url``, an empty PostgreSQL database of
yours) with ``SqlEventStore.append`` in batches of 1,000 events (each batch: 20
incidents of one IncidentOpened and 49 AlertReceived events, shaped as the ingest path writes
them for a typical alert: about 400 bytes of data each), then times
``python -m sre_agent audit verify --database-url ...`` as a subprocess (wall clock, median of
3; exit 0 expected) and its peak RSS (``ru_maxrss`` of the child: verification streams the
log in pages of 5,000 events, so memory must not grow with the log). Then changes one label of
the event in the middle of the log with a plain SQL UPDATE and times the same command again
(median of 3): it must exit 1 and name that seq. Writes benchmarks/results/audit_verify.json
(SQLite) or benchmarks/results/audit_verify_postgresql.json.

    .venv/bin/python benchmarks/audit_verify.py [--events 100000]
    .venv/bin/python benchmarks/audit_verify.py --postgres --events 1000000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import PYTHON, machine, write_result
from benchmarks.procstats import load_average, machine_size
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.store.sql import SqlEventStore

TARGETS = {"verify_s_max": 5.0}  # for 100,000 events; scaled linearly with --events
BATCH = 1000
PER_INCIDENT = 50


def batch_events(b: int) -> list[NewEvent]:
    out: list[NewEvent] = []
    for k in range(BATCH // PER_INCIDENT):
        inc = f"inc-{b:05d}{k:03d}aaaaaaaa"[:20]
        group_key = f'{{}}:{{job="job-{b}-{k}"}}'
        out.append(NewEvent(EventType.INCIDENT_OPENED, Actor.ALERTMANAGER, inc, {
            "group_key": group_key, "receiver": "sre-agent",
            "group_labels": {"alertname": "TargetDown"},
            "common_labels": {"alertname": "TargetDown", "job": f"job-{b}-{k}",
                              "severity": "critical"},
            "common_annotations": {"summary": "target down"},
            "external_url": "http://alertmanager:9093", "title": f"TargetDown: job-{b}-{k}",
            "severity": "critical"}))
        for i in range(PER_INCIDENT - 1):
            out.append(NewEvent(EventType.ALERT_RECEIVED, Actor.ALERTMANAGER, inc, {
                "fingerprint": f"{b:05x}{k:03x}{i:04x}abcd",
                "status": "firing", "starts_at": "2026-11-21T20:21:48.119000+00:00",
                "ends_at": "0001-01-01T00:00:00Z",
                "labels": {"alertname": "TargetDown", "instance": f"10.0.{k}.{i}:9100",
                           "job": f"job-{b}-{k}", "severity": "critical"},
                "annotations": {"summary": f"target 10.0.{k}.{i}:9100 down"},
                "generator_url": "http://prom:9090/graph?g0.expr=up+%3D%3D+0&g0.tab=1",
                "group_key": group_key}))
    return out


async def fill(url: str, total: int) -> None:
    store = SqlEventStore(url)
    try:
        for b in range(total // BATCH):
            await store.append(batch_events(b))
    finally:
        await store.close()


def db_mb(url: str) -> float:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                size = conn.execute(sa.text("SELECT pg_database_size(current_database())")
                                    ).scalar_one()
            else:
                size = Path(url.split("///", 1)[1]).stat().st_size
    finally:
        engine.dispose()
    return round(int(size) / 2**20, 1)


def build(url: str, total: int) -> dict[str, Any]:
    started = time.perf_counter()
    asyncio.run(fill(url, total))
    seconds = time.perf_counter() - started
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            count, avg = conn.execute(sa.text(
                "SELECT count(*), avg(length(data)) FROM events")).one()
    finally:
        engine.dispose()
    return {"events": int(count), "avg_data_bytes": round(float(avg), 1),
            "build_s": round(seconds, 2), "db_mb": db_mb(url)}


@dataclasses.dataclass
class Run:
    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float


def run_verify(url: str, cwd: Path) -> Run:
    """One ``audit verify`` subprocess: wall clock, exit code, output and its own peak RSS."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([PYTHON, "-m", "sre_agent", "audit", "verify",
                                 "--database-url", url], env=env, cwd=cwd, stdout=out,
                                stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = round(time.perf_counter() - started, 3)
        out.seek(0)
        err.seek(0)
        return Run(seconds, proc.returncode, out.read(), err.read(),
                   round(usage.ru_maxrss / 1024, 1))  # KiB on Linux


def tamper(url: str, seq: int) -> str:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            raw = conn.execute(sa.text("SELECT data FROM events WHERE seq = :s"),
                               {"s": seq}).scalar_one()
            data = json.loads(raw)
            data["labels"]["instance"] = "10.9.9.9:9100"  # an attacker hides which host it was
            conn.execute(sa.text("UPDATE events SET data = :d WHERE seq = :s"),
                         {"d": json.dumps(data, sort_keys=True, separators=(",", ":")),
                          "s": seq})
    finally:
        engine.dispose()
    return "labels.instance changed"


@contextlib.contextmanager
def databases(args: argparse.Namespace, tmp: Path) -> Iterator[tuple[str, str, str]]:
    """(back end, URL for the log, URL of an empty store) for this run."""
    if args.postgres:
        from tests.support.postgres import start_cluster

        gen = start_cluster()
        cluster = next(gen)
        try:
            yield "postgresql", cluster.create_database(), cluster.create_database()
        finally:
            with contextlib.suppress(StopIteration):
                next(gen)
    elif args.database_url:
        # Yours, empty: the benchmark creates its tables in it. The empty-log overhead is
        # measured on a SQLite file (it is the CLI's start-up, not the back end's).
        yield "postgresql", args.database_url, f"sqlite:///{tmp / 'empty.db'}"
    else:
        yield "sqlite", f"sqlite:///{tmp / 'audit.db'}", f"sqlite:///{tmp / 'empty.db'}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--postgres", action="store_true",
                       help="a throwaway PostgreSQL cluster (tests/support/postgres.py)")
    where.add_argument("--database-url",
                       help="an empty PostgreSQL database (postgresql+psycopg://...)")
    args = parser.parse_args()
    load_before = load_average()
    limit = TARGETS["verify_s_max"] * args.events / 100_000
    with tempfile.TemporaryDirectory() as tmp_name, databases(args, Path(tmp_name)) as (
            backend, url, empty):
        tmp = Path(tmp_name)
        built = build(url, args.events)
        asyncio.run(fill(empty, 0))
        overhead = statistics.median(run_verify(empty, tmp).seconds
                                     for _ in range(args.repeats))
        load_verify = load_average()
        intact = [run_verify(url, tmp) for _ in range(args.repeats)]
        for run in intact:
            assert run.returncode == 0, run.stderr
        middle = built["events"] // 2
        change = tamper(url, middle)
        broken = [run_verify(url, tmp) for _ in range(args.repeats)]
    named = [re.search(r"broken at seq (\d+)", r.stderr) for r in broken]
    verify_s = statistics.median(r.seconds for r in intact)
    tamper_s = statistics.median(r.seconds for r in broken)
    detected = all(r.returncode == 1 for r in broken) and all(
        m is not None and int(m.group(1)) == middle for m in named)
    result: dict[str, Any] = {
        "machine": {**machine(), **machine_size(), "load_average_before": load_before,
                    "load_average_before_verify": load_verify},
        "backend": backend,
        "store": built,
        "verify_intact": {"seconds": [r.seconds for r in intact], "median_s": verify_s,
                          "exit_codes": [r.returncode for r in intact],
                          "peak_rss_mb": [r.peak_rss_mb for r in intact],
                          "output": intact[0].stdout.strip(),
                          "empty_log_median_s": overhead,
                          "events_per_s": round(built["events"] / verify_s)},
        "verify_tampered": {"tampered_seq": middle, "change": change,
                            "seconds": [r.seconds for r in broken], "median_s": tamper_s,
                            "exit_codes": [r.returncode for r in broken],
                            "peak_rss_mb": [r.peak_rss_mb for r in broken],
                            "output": broken[0].stderr.strip()},
        "targets": {**TARGETS, "verify_s_max_for_this_log": limit},
        "verdicts": [
            f"audit verify of {built['events']:,} events on {backend} <= {limit:g} s: "
            f"{'met' if verify_s <= limit else 'NOT MET'} "
            f"(median {verify_s} s of {args.repeats}; peak RSS "
            f"{max(r.peak_rss_mb for r in intact)} MB)",
            f"tampered event detected (exit 1 naming seq {middle}): "
            f"{'met' if detected else 'NOT MET'} (median {tamper_s} s)",
        ],
    }
    path = write_result("audit_verify" if backend == "sqlite" else "audit_verify_postgresql",
                        result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
