"""Audit verification of a 100,000-event log, and tamper detection.

Builds a SQLite store with ``SqlEventStore.append`` in batches of 1,000 events (each batch: 20
incidents of one IncidentOpened and 49 AlertReceived events, shaped as the ingest path writes
them for a typical alert: about 400 bytes of data each), then times
``python -m sre_agent audit verify --database-url ...`` as a subprocess (wall clock, median of
3; exit 0 expected). Then changes one label of the event in the middle of the log with the
sqlite3 module and times the same command again (median of 3): it must exit 1 and name that
seq. Writes benchmarks/results/audit_verify.json.

    .venv/bin/python benchmarks/audit_verify.py [--events 100000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import PYTHON, machine, write_result
from benchmarks.procstats import load_average, machine_size
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.store.sql import SqlEventStore

TARGETS = {"verify_s_max": 5.0}
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


def build(db: Path, total: int) -> dict[str, Any]:
    started = time.perf_counter()
    asyncio.run(fill(f"sqlite:///{db}", total))
    seconds = time.perf_counter() - started
    with sqlite3.connect(db) as conn:
        count, avg = conn.execute("SELECT count(*), avg(length(data)) FROM events").fetchone()
    return {"events": int(count), "avg_data_bytes": round(float(avg), 1),
            "build_s": round(seconds, 2), "db_mb": round(db.stat().st_size / 2**20, 1)}


def run_verify(db: Path, cwd: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    started = time.perf_counter()
    proc = subprocess.run([PYTHON, "-m", "sre_agent", "audit", "verify", "--database-url",
                           f"sqlite:///{db}"], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)
    return round(time.perf_counter() - started, 3), proc


def tamper(db: Path, seq: int) -> str:
    with sqlite3.connect(db) as conn:
        (raw,) = conn.execute("SELECT data FROM events WHERE seq = ?", (seq,)).fetchone()
        data = json.loads(raw)
        data["labels"]["instance"] = "10.9.9.9:9100"  # an attacker hides which host it was
        conn.execute("UPDATE events SET data = ? WHERE seq = ?",
                     (json.dumps(data, sort_keys=True, separators=(",", ":")), seq))
    return "labels.instance changed"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "audit.db"
        built = build(db, args.events)
        empty = tmp / "empty.db"
        asyncio.run(fill(f"sqlite:///{empty}", 0))
        overhead = statistics.median(run_verify(empty, tmp)[0] for _ in range(args.repeats))
        intact = [run_verify(db, tmp) for _ in range(args.repeats)]
        for _, proc in intact:
            assert proc.returncode == 0, proc.stderr
        middle = built["events"] // 2
        change = tamper(db, middle)
        broken = [run_verify(db, tmp) for _ in range(args.repeats)]
    named = [re.search(r"broken at seq (\d+)", p.stderr) for _, p in broken]
    verify_s = statistics.median(s for s, _ in intact)
    tamper_s = statistics.median(s for s, _ in broken)
    detected = all(p.returncode == 1 for _, p in broken) and all(
        m is not None and int(m.group(1)) == middle for m in named)
    result: dict[str, Any] = {
        "machine": {**machine(), **machine_size(), "load_average_before": load_before},
        "store": built,
        "verify_intact": {"seconds": [s for s, _ in intact], "median_s": verify_s,
                          "exit_codes": [p.returncode for _, p in intact],
                          "output": intact[0][1].stdout.strip(),
                          "empty_log_median_s": overhead,
                          "events_per_s": round(built["events"] / verify_s)},
        "verify_tampered": {"tampered_seq": middle, "change": change,
                            "seconds": [s for s, _ in broken], "median_s": tamper_s,
                            "exit_codes": [p.returncode for _, p in broken],
                            "output": broken[0][1].stderr.strip()},
        "targets": TARGETS,
        "verdicts": [
            f"audit verify of {built['events']:,} events <= {TARGETS['verify_s_max']:g} s: "
            f"{'met' if verify_s <= TARGETS['verify_s_max'] else 'NOT MET'} "
            f"(median {verify_s} s of {args.repeats})",
            f"tampered event detected (exit 1 naming seq {middle}): "
            f"{'met' if detected else 'NOT MET'} (median {tamper_s} s)",
        ],
    }
    path = write_result("audit_verify", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
