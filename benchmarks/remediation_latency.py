"""Webhook receipt -> ActionStarted, autonomous mode, rules path, real Docker engine.

Starts the agent (``sre-agent serve``) with a fresh SQLite file, a pool of managed busybox
containers, and sends N one-alert incidents one after another (each waits for its
ActionSucceeded), so the figure is the agent's own time, not queueing behind earlier work.
The agent's time is measured from its own event timestamps (AlertReceived -> ActionStarted);
Docker's restart time comes from the backend's result. Writes
benchmarks/results/remediation_latency.json.

    .venv/bin/python benchmarks/remediation_latency.py [--incidents 200]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.docker_helpers import ContainerJanitor, docker_client
from tests.support.payloads import alert, notification

from benchmarks.common import (
    PYTHON,
    free_port,
    machine,
    percentile,
    start_server,
    stop,
    write_result,
)

LOOP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.1; done"]


def ts(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=200)
    parser.add_argument("--containers", type=int, default=10)
    args = parser.parse_args()
    client = docker_client()
    with tempfile.TemporaryDirectory() as tmp, ContainerJanitor(client) as janitor:
        boxes = [janitor.run_busybox(LOOP, prefix="bench", labels={"sre-agent.managed": "true"})
                 for _ in range(args.containers)]
        port = free_port()
        db = Path(tmp) / "bench.db"
        agent = start_server(
            [PYTHON, "-m", "sre_agent", "serve", "--port", str(port)],
            {"SRE_AGENT_DATABASE_URL": f"sqlite:///{db}", "SRE_AGENT_MODE": "autonomous",
             "SRE_AGENT_COOLDOWN_S": "0", "SRE_AGENT_MAX_ACTIONS_PER_HOUR": "100000",
             "SRE_AGENT_MAX_ACTIONS_PER_TARGET_PER_HOUR": "100000",
             "SRE_AGENT_LOG_LEVEL": "WARNING", "SRE_AGENT_WORKERS": "4",
             "SRE_AGENT_VERIFY_DEADLINE_S": "10", "SRE_AGENT_DOCKER_STOP_TIMEOUT_S": "2"},
            f"http://127.0.0.1:{port}/ready")
        url = f"http://127.0.0.1:{port}/webhook/alertmanager"
        try:
            conn = sqlite3.connect(db)
            for i in range(args.incidents):
                box = boxes[i % len(boxes)]
                payload = notification([alert(fingerprint=f"b{i:05d}",
                                              labels={"container": box.name})],
                                       group_key=f"bench-{i}")
                r = httpx.post(url, json=payload, timeout=30)
                inc = r.json()["incidents"][0]
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    row = conn.execute("SELECT count(*) FROM events WHERE incident_id=? AND "
                                       "type IN ('ActionSucceeded','ActionFailed',"
                                       "'ActionBlocked')", (inc,)).fetchone()
                    if row[0]:
                        break
                    time.sleep(0.02)
            time.sleep(3)  # let the last verifications land
            agent_ms, docker_ms, outcomes = [], [], {}
            for inc, in conn.execute("SELECT id FROM incidents").fetchall():
                events = {t: (at, data) for t, at, data in conn.execute(
                    "SELECT type, at, data FROM events WHERE incident_id=? ORDER BY seq", (inc,))}
                if "ActionStarted" not in events:
                    row = conn.execute("SELECT status, decision_reason FROM actions WHERE "
                                       "incident_id=?", (inc,)).fetchone()
                    key = f"not_started: {row[0]}: {row[1]}" if row else "no action proposed"
                    outcomes[key] = outcomes.get(key, 0) + 1
                    continue
                agent_ms.append((ts(events["ActionStarted"][0])
                                 - ts(events["AlertReceived"][0])) * 1000)
                done = events.get("ActionSucceeded") or events.get("ActionFailed")
                if done:
                    detail = json.loads(done[1])["result"].get("detail", {})
                    if "restart_ms" in detail:
                        docker_ms.append(float(detail["restart_ms"]))
                status = conn.execute("SELECT status FROM actions WHERE incident_id=?",
                                      (inc,)).fetchone()[0]
                outcomes[status] = outcomes.get(status, 0) + 1
            conn.close()
        finally:
            stop(agent)
    result = {
        "machine": machine(), "incidents": args.incidents, "containers": args.containers,
        "agent_ms": {"p50": round(percentile(agent_ms, 50), 2),
                     "p99": round(percentile(agent_ms, 99), 2),
                     "mean": round(statistics.fmean(agent_ms), 2), "n": len(agent_ms)},
        "docker_restart_ms": {"p50": round(percentile(docker_ms, 50), 1),
                              "p99": round(percentile(docker_ms, 99), 1), "n": len(docker_ms)},
        "action_outcomes": outcomes,
        "targets": {"agent_p50_ms_max": 50},
        "note": "agent_ms = AlertReceived.at -> ActionStarted.at (correlation, target "
                "resolution, evidence from Docker and the rules, the gate, the durable "
                "ActionStarted write); Docker's restart is reported beside it.",
    }
    path = write_result("remediation_latency", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
