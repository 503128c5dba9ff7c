"""Failover: ``kill -9`` of the replica holding an incident's lease in the middle of a restart,
to the incident's action completed (``ActionSucceeded``, reconciled) by the other replica.

Real parts: a throwaway PostgreSQL 15 cluster (``tests/support/postgres.py``), two
``sre-agent serve`` processes on one database (role ``all``), the real Docker engine and a
busybox target whose PID 1 ignores SIGTERM, so a restart is in flight for Docker's stop timeout.
The alert is delivered to both replicas (as an Alertmanager HA pair does). When ``ActionStarted``
is in the log and Docker has sent the stop signal, the lease holder (found from the ``leases``
row: the owner names its PID) is killed with SIGKILL; the clock runs until the other replica has
appended the action's outcome. Docker's own event stream says when the restart landed and that
it happened once.

Per TTL in ``--ttls`` (default 5,10,30), ``--runs`` runs (default 3), each on a fresh database.
Target: failover <= lease TTL + 2 s. Writes benchmarks/results/failover.json.

    .venv/bin/python benchmarks/failover.py [--ttls 5,10,30] [--runs 3] [--stop-timeout 2]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.docker_helpers import docker_client, ensure_busybox_image
from tests.support.payloads import alert, notification
from tests.support.postgres import start_cluster
from tests.support.replicas import (
    TOKEN,
    Db,
    docker_actions,
    owner_pid,
    start_replica,
    stop_replica,
    wait_for,
    wait_replica_ready,
)

from benchmarks.common import machine, write_result
from benchmarks.procstats import load_average, machine_size

IGNORES_TERM = ["sh", "-c", "while true; do sleep 0.2; done"]
SLACK_S = 2.0
TTL_CHOSEN = (
    "10 s, the default of SRE_AGENT_LEASE_TTL_S (was 30 s). Failover is about one TTL (the "
    "rows above), so 30 s kept a dead replica's incidents (and a restart half done) waiting "
    "half a minute. Shorter is cheap in writes (one UPDATE per replica every TTL/3, only "
    "while it holds leases) but shrinks the margin for a live replica whose renewals are "
    "late: on this 2-core machine at load 8-9 webhook answers took up to ~1.5 s (storm on "
    "two replicas), and a PostgreSQL restart stalls every write for a second or two. With "
    "10 s a replica can miss two renewals in a row (every 3.3 s) and keep its leases. A false "
    "takeover would duplicate stage work, never an action (ActionStarted is guarded). 5 s "
    "meets the target too; choose it where failover matters more than a noisy host.")


def one_run(cluster: Any, work: Path, box: Any, client: Any, scope: str, ttl: float,
            stop_timeout: int, run: int) -> dict[str, Any]:
    url = cluster.create_database()
    env = {"SRE_AGENT_MODE": "autonomous", "SRE_AGENT_SCOPE_LABEL": f"{scope}=true",
           "SRE_AGENT_LEASE_TTL_S": f"{ttl:g}", "SRE_AGENT_LOG_LEVEL": "WARNING",
           "SRE_AGENT_DOCKER_STOP_TIMEOUT_S": str(stop_timeout),
           "SRE_AGENT_VERIFY_STABLE_S": "1", "SRE_AGENT_COOLDOWN_S": "0",
           "SRE_AGENT_RESUME_SWEEP_S": "30"}  # the default: takeover must not wait for it
    run_dir = work / f"ttl{ttl:g}-run{run}"
    run_dir.mkdir()
    agents = [start_replica(url, run_dir, f"r{i}", **env) for i in range(2)]
    try:
        for agent in agents:
            wait_replica_ready(agent)
        body = notification([alert(fingerprint=f"failover{uuid.uuid4().hex[:8]}",
                                   labels={"container": box.name, "job": f"fo-{box.name}"})],
                            group_key=f"fo-{uuid.uuid4().hex[:8]}")
        since = time.time()
        with httpx.Client(timeout=30) as http:
            for agent in agents:
                r = http.post(agent.webhook_url, json=body,
                              headers={"authorization": f"Bearer {TOKEN}"})
                r.raise_for_status()
        with Db(url) as db:
            (started,) = wait_for(lambda: db.events("ActionStarted"), 60, "ActionStarted")
            wait_for(lambda: "kill" in docker_actions(client, box.id, since), 30,
                     "Docker's stop signal")
            owner = db.lease_owner(started["incident_id"])
            assert owner is not None
            (holder,) = [a for a in agents if a.pid == owner_pid(owner)]
            assert "ActionSucceeded" not in db.types(started["incident_id"])
            killed_wall = time.time()
            killed = time.monotonic()
            holder.kill9()
            wait_for(lambda: db.events("ActionSucceeded") or db.events("ActionFailed"), 120,
                     "the other replica's outcome", interval=0.02)
            failover = time.monotonic() - killed
            (outcome,) = db.events("ActionSucceeded") or db.events("ActionFailed")
        events = list(client.events(since=since, until=time.time() + 0.5, decode=True,
                                    filters={"container": box.id, "type": "container"}))
        starts = [e for e in events if e.get("Action") == "start"]
        restarts = [e for e in events if e.get("Action") == "restart"]
        landed = (int(starts[0]["timeNano"]) / 1e9 - killed_wall) if starts else None
        return {
            "failover_s": round(failover, 2),
            "restart_landed_s_after_kill": None if landed is None else round(landed, 2),
            "outcome": outcome["data"]["result"].get("reconcile"),
            "reconciled_by_system": outcome["actor"] == "system",
            "docker_restarts": len(restarts), "docker_starts": len(starts),
        }
    finally:
        for agent in agents:
            stop_replica(agent)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ttls", default="5,10,30")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--stop-timeout", type=int, default=2)
    args = parser.parse_args()
    client = docker_client()
    image = ensure_busybox_image(client)
    scope = f"sre-bench-failover-{uuid.uuid4().hex[:6]}"
    box = client.containers.run(image, IGNORES_TERM, detach=True,
                                name=f"sre-bench-failover-{uuid.uuid4().hex[:8]}",
                                labels={scope: "true", "sre-agent.test": "1"})
    cluster_gen = start_cluster()
    cluster = next(cluster_gen)
    results: dict[str, Any] = {}
    load_before = load_average()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for ttl in [float(t) for t in args.ttls.split(",")]:
                runs = [one_run(cluster, Path(tmp), box, client, scope, ttl, args.stop_timeout,
                                i) for i in range(args.runs)]
                times = [r["failover_s"] for r in runs]
                results[f"{ttl:g}"] = {
                    "lease_ttl_s": ttl, "runs": runs,
                    "failover_s_median": round(statistics.median(times), 2),
                    "failover_s_max": max(times),
                    "target_s": ttl + SLACK_S,
                    "met": max(times) <= ttl + SLACK_S,
                    "exactly_once": all(r["docker_restarts"] == 1 and r["docker_starts"] == 1
                                        and r["outcome"] == "took_effect" for r in runs),
                }
                print(f"TTL {ttl:g} s: failover {times} s (target <= {ttl + SLACK_S:g} s)",
                      flush=True)
    finally:
        with contextlib.suppress(Exception):
            box.remove(force=True)
        with contextlib.suppress(StopIteration):
            next(cluster_gen)
        client.close()
    result = {
        "machine": {**machine(), **machine_size()},
        "load_average_before": load_before,
        "setup": {"replicas": 2, "docker_stop_timeout_s": args.stop_timeout,
                  "resume_sweep_s": 30, "target": "failover <= lease TTL + 2 s",
                  "killed_when": "ActionStarted in the log and Docker's stop signal sent"},
        "by_ttl": results,
        "ttl_chosen": TTL_CHOSEN,
        "note": ("Failover = the lease running out (at most one TTL after the holder's last "
                 "renewal, renewals every TTL/3) + the other replica's lease watch (every "
                 "min(1 s, TTL/3)) + claiming, loading the incident and reconciling from "
                 "Docker. The restart itself lands in the daemon about stop-timeout seconds "
                 "after the kill whatever the agents do; a reconcile that starts earlier waits "
                 "for it (the action's time bound)."),
    }
    path = write_result("failover", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
