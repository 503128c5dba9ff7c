"""Alert storm: 10,000 alerts in 200 notifications of 50, each delivered twice, 8 senders.

Each notification is one Alertmanager group (50 alerts sharing a groupKey; 200 distinct
groupKeys). All 400 POSTs are shuffled so that the two deliveries of a group interleave with
the rest, and sent by 8 concurrent senders to a real ``python -m sre_agent serve`` subprocess on
a fresh SQLite file. The alerts' labels name no container (no ``container`` label; job and
instance match nothing Docker runs), so target resolution finds nothing.

With ``--replicas N`` the storm goes to N agents on one PostgreSQL database
(``--database-url``, else a throwaway PostgreSQL 15 cluster, ``tests/support/postgres.py``) and
the two deliveries of each notification go to two different replicas, as an Alertmanager HA pair
sends them (results in ``storm_replicas<N>.json``).

Runs the storm once per mode (default: ``observe``, then ``autonomous``) and reports, per run:
webhook latency (p50/p99), that every alert is stored exactly once (AlertReceived events and
alert rows = 10,000, distinct fingerprints = 10,000), incidents = 200, analyses
(DiagnosisProduced) <= incidents, the agent's peak RSS (VmHWM) and the time until the pipeline
backlog (``GET /status`` ``backlog``) drains to 0. Writes benchmarks/results/storm.json.

    .venv/bin/python benchmarks/storm.py [--groups 200] [--per-group 50] \
        [--concurrency 8] [--modes observe,autonomous] [--replicas 2 [--database-url URL]]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.payloads import alert, notification

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


def store_counts(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        def one(sql: str) -> int:
            return int(conn.execute(text(sql)).scalar_one())
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
                "type='DiagnosisProduced' GROUP BY incident_id HAVING count(*) > 1) AS twice"),
            "actions_started": one("SELECT count(*) FROM events WHERE type='ActionStarted'"),
            "events_total": one("SELECT count(*) FROM events"),
            "pending_incidents": one(
                "SELECT count(*) FROM incidents i LEFT JOIN progress p ON p.incident_id = i.id"
                " WHERE i.last_seq > coalesce(p.processed_seq, 0)"),
        }


def action_outcomes(url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    with create_engine(url).connect() as conn:
        return {f"{kind}:{status}": int(n) for kind, status, n in conn.execute(text(
            "SELECT kind, status, count(*) FROM actions GROUP BY kind, status ORDER BY 1, 2"))}


async def wait_drained(bases: list[str], timeout: float) -> float | None:
    """Seconds until GET /status says backlog 0 and an empty inbox (SRE_AGENT_WEBHOOK_ACK=
    queued) on every agent (None: not within ``timeout``)."""
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=30) as client:
        while time.perf_counter() - start < timeout:
            states = [(await client.get(f"{b}/status")).json() for b in bases]
            backlogs = [s["backlog"] + s.get("inbox", 0) for s in states]
            if not any(backlogs):
                return round(time.perf_counter() - start, 3)
            await asyncio.sleep(0.1)
    return None


async def wait_nothing_pending(url: str, timeout: float) -> float | None:
    """Seconds until no incident is pending in the store (None: not within ``timeout``)."""
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if store_counts(url)["pending_incidents"] == 0:
            return round(time.perf_counter() - start, 3)
        await asyncio.sleep(0.5)
    return None


def delivery_targets(bodies: list[bytes], replicas: int) -> list[int]:
    """For each POST, the replica it goes to: the k-th delivery of a notification to replica
    k mod N (an HA pair sends its two deliveries to two replicas)."""
    seen: dict[bytes, int] = {}
    out = []
    for body in bodies:
        k = seen.get(body, 0)
        seen[body] = k + 1
        out.append(k % replicas)
    return out


@contextlib.contextmanager
def database(replicas: int, url: str | None, tmp: str) -> Iterator[str]:
    """The storm's database: a fresh SQLite file for one agent; for replicas, a fresh database
    on ``url``'s server or on a throwaway PostgreSQL cluster."""
    if replicas == 1 and url is None:
        yield f"sqlite:///{Path(tmp) / 'storm.db'}"
        return
    if url is not None:
        yield url
        return
    from tests.support.postgres import start_cluster

    cluster_gen = start_cluster()
    cluster = next(cluster_gen)
    try:
        yield cluster.create_database()
    finally:
        with contextlib.suppress(StopIteration):
            next(cluster_gen)


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
                    expected_alerts: int, expected_groups: int, replicas: int = 1,
                    database_url: str | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp, database(replicas, database_url, tmp) as url:
        if database_url is not None:  # a fresh database on the given server
            url = fresh_database(url)
        ports = [free_port() for _ in range(replicas)]
        bases = [f"http://127.0.0.1:{port}" for port in ports]
        agents = []
        try:
            for port, base in zip(ports, bases, strict=True):
                agents.append(start_server(
                    [PYTHON, "-m", "sre_agent", "serve", "--port", str(port)],
                    {"SRE_AGENT_DATABASE_URL": url, "SRE_AGENT_WEBHOOK_TOKEN": TOKEN,
                     "SRE_AGENT_LOG_LEVEL": "WARNING", "SRE_AGENT_MODE": mode},
                    f"{base}/ready", timeout=60))
            pids = [a.pid for a in agents]
            idle_rss = [rss_mb(pid) for pid in pids]
            load_before = load_average()
            headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
            targets = delivery_targets(bodies, replicas)
            urls = [f"{b}/webhook/alertmanager" for b in bases]
            cpu0 = sum(cpu_seconds(pid) for pid in pids)
            started = time.perf_counter()
            load = await drive(lambda i: urls[targets[i]], lambda i: bodies[i], len(bodies),
                               concurrency, headers)
            cpu1 = sum(cpu_seconds(pid) for pid in pids)
            drained_after_last_ack = await wait_drained(bases, 600)
            total = round(time.perf_counter() - started, 3)
            pending_at_drain = store_counts(url)["pending_incidents"]
            settled = await wait_nothing_pending(url, 120)
            cpu2 = sum(cpu_seconds(pid) for pid in pids)
            peaks = [peak_rss_mb(pid) for pid in pids]
            rss_after = [rss_mb(pid) for pid in pids]
        finally:
            for agent in agents:
                stop(agent)
        counts = store_counts(url)
        outcomes = action_outcomes(url)
    exactly_once = (counts["alert_received_events"] == expected_alerts
                    == counts["alert_rows"] == counts["distinct_fingerprints"])
    one = replicas == 1
    return {
        "mode": mode,
        "replicas": replicas,
        "database": "sqlite" if url.startswith("sqlite") else "postgresql",
        "load_average_before": load_before,
        "webhook": load,
        "agent_cpu_s": {"during_storm": round(cpu1 - cpu0, 2),
                        "per_post_ms": round((cpu1 - cpu0) / len(bodies) * 1000, 2),
                        "after_last_ack_until_drained": round(cpu2 - cpu1, 2)},
        "backlog_drained_s_after_last_ack": drained_after_last_ack,
        # With replicas, a run marks processed only the log it saw when it began, so its own
        # events leave the incident pending until a sweep (SRE_AGENT_RESUME_SWEEP_S) runs it
        # once more and finds nothing new to do.
        "pending_incidents_at_drain": pending_at_drain,
        "nothing_pending_s_after_drain": settled,
        "storm_start_to_drained_s": total,
        "rss_mb": {"idle_before": idle_rss[0] if one else idle_rss,
                   "peak_vmhwm": peaks[0] if one else max(peaks),
                   "after_drain": rss_after[0] if one else rss_after},
        "store": counts,
        "action_outcomes": outcomes,
        "checks": {
            "all_2xx": all(200 <= int(code) < 300 for code in load["statuses"]),
            "every_alert_stored_exactly_once": exactly_once,
            "incidents_equal_groups": counts["incidents"] == expected_groups,
            "analyses_le_incidents": counts["diagnoses"] <= counts["incidents"],
            "no_incident_analysed_twice": counts["incidents_with_two_diagnoses"] == 0,
            "nothing_left_pending": counts["pending_incidents"] == 0,
        },
    }


def fresh_database(url: str) -> str:
    """A new, empty database on the server of ``url`` (postgresql+psycopg://...)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = "storm_" + uuid.uuid4().hex[:10]
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(url).set(database=name).render_as_string(hide_password=False)


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
    parser.add_argument("--replicas", type=int, default=1,
                        help="agents on one database (above 1: PostgreSQL)")
    parser.add_argument("--database-url", default=None,
                        help="a PostgreSQL server to make the storm's database on (default: "
                             "a throwaway cluster when --replicas > 1)")
    args = parser.parse_args()
    if args.replicas > 1 and args.database_url and args.database_url.startswith("sqlite"):
        parser.error("several replicas need PostgreSQL (SQLite: one agent)")
    bodies = storm_bodies(args.groups, args.per_group)
    result: dict[str, Any] = {
        "machine": {**machine(), **machine_size()},
        "code": code_label(),
        "storm": {"replicas": args.replicas,
                  "notifications": args.groups, "alerts_per_notification": args.per_group,
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
                              args.groups, args.replicas, args.database_url)
        result["runs"][mode] = run
        result["verdicts"][mode] = verdicts(run)
        print(f"[{mode}]", *verdicts(run), sep="\n  ", flush=True)
    path = write_result("storm" if args.replicas == 1 and not args.database_url
                        else f"storm_replicas{args.replicas}", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main())
