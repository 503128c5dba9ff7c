"""Alert storm: 10,000 alerts in 200 notifications of 50, each delivered twice, 8 senders.

Each notification is one Alertmanager group (50 alerts sharing a groupKey; 200 distinct
groupKeys). All 400 POSTs are shuffled so that the two deliveries of a group interleave with
the rest, and sent by 8 concurrent senders to a real ``python -m sre_agent serve`` subprocess on
a fresh SQLite file. The alerts' labels name no container (no ``container`` label; job and
instance match nothing Docker runs), so target resolution finds nothing.

Runs the storm once per mode (default: ``observe``, then ``autonomous``) and reports, per run:
webhook latency (p50/p99), that every alert is stored exactly once (AlertReceived events and
alert rows = 10,000, distinct fingerprints = 10,000), incidents = 200, analyses
(DiagnosisProduced) <= incidents, the agent's peak RSS (VmHWM) and the time until the pipeline
backlog (``GET /status`` ``backlog``) drains to 0. Writes benchmarks/results/storm.json.

    .venv/bin/python benchmarks/storm.py [--groups 200] [--per-group 50] \
        [--concurrency 8] [--modes observe,autonomous]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.payloads import alert, notification

from benchmarks.common import (
    PYTHON,
    drive,
    free_port,
    machine,
    start_server,
    stop,
    write_result,
)
from benchmarks.procstats import cpu_seconds, load_average, machine_size, peak_rss_mb, rss_mb
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.store.sql import SqlEventStore

TOKEN = "bench-webhook-token"
TARGETS = {"webhook_p99_ms_max": 100.0, "peak_rss_mb_max": 300.0}
NOTE = ("Closed loop: each of the senders waits for its answer, so mean latency ~= senders / "
        "throughput. Throughput is bound by the agent's CPU per POST (agent_cpu_s.per_post_ms; "
        "one core at most: one GIL, one store-writer thread), most of it the store's ingest of "
        "a 50-alert notification (store_ingest_alone: 51 events JSON-encoded, hashed, "
        "inserted and projected). A POST arriving while a group-commit batch runs waits for "
        "that batch and then its own, so p99 ~= 2x p50. See docs/reliability.md.")


def storm_bodies(groups: int, per_group: int, seed: int = 7) -> list[bytes]:
    """Every notification twice, shuffled (duplicates interleave with other groups)."""
    bodies = []
    for g in range(groups):
        alerts = [alert(name="TargetDown", fingerprint=f"storm{g:04d}{i:04d}",
                        labels={"job": f"storm-job-{g:04d}",
                                "instance": f"storm-host-{g:04d}-{i:03d}.invalid:9100"},
                        annotations={"summary": f"storm target {g}/{i} down",
                                     "description": "part of the storm benchmark"})
                  for i in range(per_group)]
        body = json.dumps(notification(alerts, group_key=f'{{}}:{{storm="{g:04d}"}}')).encode()
        bodies += [body, body]
    random.Random(seed).shuffle(bodies)
    return bodies


def store_counts(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        def one(sql: str) -> int:
            return int(conn.execute(sql).fetchone()[0])
        return {
            "alert_received_events": one("SELECT count(*) FROM events "
                                         "WHERE type='AlertReceived'"),
            "alert_rows": one("SELECT count(*) FROM alerts"),
            "distinct_fingerprints": one("SELECT count(DISTINCT fingerprint) FROM alerts"),
            "incidents": one("SELECT count(*) FROM incidents"),
            "incident_opened_events": one("SELECT count(*) FROM events "
                                          "WHERE type='IncidentOpened'"),
            "diagnoses": one("SELECT count(*) FROM events WHERE type='DiagnosisProduced'"),
            "incidents_with_two_diagnoses": one(
                "SELECT count(*) FROM (SELECT incident_id FROM events WHERE "
                "type='DiagnosisProduced' GROUP BY incident_id HAVING count(*) > 1)"),
            "actions_started": one("SELECT count(*) FROM events WHERE type='ActionStarted'"),
            "events_total": one("SELECT count(*) FROM events"),
        }


def action_outcomes(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        return {f"{kind}:{status}": int(n) for kind, status, n in conn.execute(
            "SELECT kind, status, count(*) FROM actions GROUP BY kind, status ORDER BY 1, 2")}


async def wait_drained(base: str, timeout: float) -> float | None:
    """Seconds until GET /status says backlog 0 (None: not within ``timeout``)."""
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as client:
        while time.perf_counter() - start < timeout:
            status = (await client.get(f"{base}/status")).json()
            if status["backlog"] == 0:
                return round(time.perf_counter() - start, 3)
            await asyncio.sleep(0.1)
    return None


async def ingest_cost(bodies: list[bytes]) -> dict[str, float]:
    """CPU per notification of the store's ingest alone, in this process, one at a time: the
    work the agent's single writer does for each POST (parse excluded)."""
    notes = [WebhookNotification.model_validate(json.loads(b)) for b in bodies]
    new: list[float] = []
    dup: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlEventStore(f"sqlite:///{tmp}/ingest.db")
        try:
            for n in notes:
                t0 = time.process_time()
                result = await store.ingest(n)
                (new if result.new_alerts else dup).append(time.process_time() - t0)
        finally:
            await store.close()
    return {"new_notification_cpu_ms": round(statistics.fmean(new) * 1000, 2),
            "duplicate_notification_cpu_ms": round(statistics.fmean(dup) * 1000, 2)}


async def run_storm(mode: str, bodies: list[bytes], concurrency: int,
                    expected_alerts: int, expected_groups: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "storm.db"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        agent = start_server(
            [PYTHON, "-m", "sre_agent", "serve", "--port", str(port)],
            {"SRE_AGENT_DATABASE_URL": f"sqlite:///{db}", "SRE_AGENT_WEBHOOK_TOKEN": TOKEN,
             "SRE_AGENT_LOG_LEVEL": "WARNING", "SRE_AGENT_MODE": mode},
            f"{base}/ready")
        try:
            idle_rss = rss_mb(agent.pid)
            load_before = load_average()
            headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
            cpu0 = cpu_seconds(agent.pid)
            started = time.perf_counter()
            load = await drive(f"{base}/webhook/alertmanager", lambda i: bodies[i], len(bodies),
                               concurrency, headers)
            cpu1 = cpu_seconds(agent.pid)
            drained_after_last_ack = await wait_drained(base, 600)
            total = round(time.perf_counter() - started, 3)
            cpu2 = cpu_seconds(agent.pid)
            peak = peak_rss_mb(agent.pid)
            rss_after = rss_mb(agent.pid)
        finally:
            stop(agent)
        counts = store_counts(db)
        outcomes = action_outcomes(db)
    exactly_once = (counts["alert_received_events"] == expected_alerts
                    == counts["alert_rows"] == counts["distinct_fingerprints"])
    return {
        "mode": mode,
        "load_average_before": load_before,
        "webhook": load,
        "agent_cpu_s": {"during_storm": round(cpu1 - cpu0, 2),
                        "per_post_ms": round((cpu1 - cpu0) / len(bodies) * 1000, 2),
                        "after_last_ack_until_drained": round(cpu2 - cpu1, 2)},
        "backlog_drained_s_after_last_ack": drained_after_last_ack,
        "storm_start_to_drained_s": total,
        "rss_mb": {"idle_before": idle_rss, "peak_vmhwm": peak, "after_drain": rss_after},
        "store": counts,
        "action_outcomes": outcomes,
        "checks": {
            "all_2xx": set(load["statuses"]) == {200},
            "every_alert_stored_exactly_once": exactly_once,
            "incidents_equal_groups": counts["incidents"] == expected_groups,
            "analyses_le_incidents": counts["diagnoses"] <= counts["incidents"],
            "no_incident_analysed_twice": counts["incidents_with_two_diagnoses"] == 0,
        },
    }


def verdicts(run: dict[str, Any]) -> list[str]:
    p99 = run["webhook"]["p99_ms"]
    peak = run["rss_mb"]["peak_vmhwm"]
    out = [
        f"webhook p99 <= {TARGETS['webhook_p99_ms_max']:g} ms: "
        f"{'met' if p99 <= TARGETS['webhook_p99_ms_max'] else 'NOT MET'} ({p99} ms)",
        f"peak RSS <= {TARGETS['peak_rss_mb_max']:g} MB: "
        f"{'met' if peak <= TARGETS['peak_rss_mb_max'] else 'NOT MET'} ({peak} MB)",
    ]
    for name, ok in run["checks"].items():
        out.append(f"{name}: {'met' if ok else 'NOT MET'}")
    return out


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--groups", type=int, default=200)
    parser.add_argument("--per-group", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--modes", default="observe,autonomous")
    args = parser.parse_args()
    bodies = storm_bodies(args.groups, args.per_group)
    result: dict[str, Any] = {
        "machine": {**machine(), **machine_size()},
        "storm": {"notifications": args.groups, "alerts_per_notification": args.per_group,
                  "alerts": args.groups * args.per_group, "deliveries_each": 2,
                  "posts": len(bodies), "concurrency": args.concurrency,
                  "body_bytes": len(bodies[0])},
        "targets": TARGETS,
        "store_ingest_alone": await ingest_cost(bodies),
        "note": NOTE,
        "runs": {},
        "verdicts": {},
    }
    for mode in args.modes.split(","):
        run = await run_storm(mode, bodies, args.concurrency, args.groups * args.per_group,
                              args.groups)
        result["runs"][mode] = run
        result["verdicts"][mode] = verdicts(run)
        print(f"[{mode}]", *verdicts(run), sep="\n  ", flush=True)
    path = write_result("storm", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main())
