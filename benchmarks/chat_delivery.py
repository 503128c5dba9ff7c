"""Does a slow Slack hold up the pipeline? Webhook receipt -> the gate's decision, with no chat
destination, with a fast Slack, and with a Slack that takes ``--slow-s`` per request.

Each run starts the agent (``sre-agent serve``, approval mode, rules, a fresh SQLite file) with
the Slack Web API served by the loopback protocol server of the tests
(``tests/support/chat_servers.py``), and sends N one-alert incidents one after another, each
after the previous one's gate decision. ``pipeline_ms`` = AlertReceived.at -> the first gate
decision event (from the agent's own event timestamps); ``delivery_ms`` = AlertReceived.at ->
the first NotificationDelivered. Writes benchmarks/results/chat_delivery.json.

    .venv/bin/python benchmarks/chat_delivery.py [--incidents 40] [--slow-s 1.0]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.chat_servers import SlackApi
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

GATE = ("ActionBlocked", "ActionAwaitingApproval", "ActionStarted", "ActionDryRun")


def ts(at: str) -> float:
    return datetime.fromisoformat(at).timestamp()


def run(incidents: int, slack: SlackApi | None, tmp: Path) -> dict[str, Any]:
    port = free_port()
    db = tmp / f"bench-{time.monotonic_ns()}.db"
    env = {"SRE_AGENT_DATABASE_URL": f"sqlite:///{db}", "SRE_AGENT_MODE": "approval",
           "SRE_AGENT_LOG_LEVEL": "WARNING", "SRE_AGENT_DELIVERY_POLL_S": "0.2",
           "SRE_AGENT_DELIVERY_TIMEOUT_S": "30"}
    if slack is not None:
        env |= {"SRE_AGENT_SLACK_BOT_TOKEN": slack.token, "SRE_AGENT_SLACK_CHANNEL": "C0ALERTS",
                "SRE_AGENT_SLACK_API_URL": slack.api_url}
    agent = start_server([PYTHON, "-m", "sre_agent", "serve", "--port", str(port)], env,
                         f"http://127.0.0.1:{port}/ready")
    url = f"http://127.0.0.1:{port}/webhook/alertmanager"
    try:
        conn = sqlite3.connect(db)
        marks = ",".join("?" * len(GATE))
        for i in range(incidents):
            payload = notification([alert(fingerprint=f"c{i:05d}",
                                          labels={"container": f"nowhere-{i}"})],
                                   group_key=f"chat-{i}")
            inc = httpx.post(url, json=payload, timeout=30).json()["incidents"][0]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                if conn.execute(f"SELECT count(*) FROM events WHERE incident_id=? AND type IN "
                                f"({marks})", (inc, *GATE)).fetchone()[0]:
                    break
                time.sleep(0.01)
        time.sleep(2)
        pipeline, delivery = [], []
        for (inc,) in conn.execute("SELECT id FROM incidents").fetchall():
            rows = conn.execute("SELECT type, at FROM events WHERE incident_id=? ORDER BY seq",
                                (inc,)).fetchall()
            first = {}
            for t, at in rows:
                first.setdefault(t, at)
            start = ts(first["AlertReceived"])
            gate = min(ts(first[t]) for t in GATE if t in first)
            pipeline.append((gate - start) * 1000)
            if "NotificationDelivered" in first:
                delivery.append((ts(first["NotificationDelivered"]) - start) * 1000)
        conn.close()
    finally:
        stop(agent)
    return {"pipeline_ms": {"p50": round(percentile(pipeline, 50), 2),
                            "p99": round(percentile(pipeline, 99), 2), "n": len(pipeline)},
            "delivered_within_run": len(delivery),
            "delivery_ms_p50": round(percentile(delivery, 50), 1) if delivery else None}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=40)
    parser.add_argument("--slow-s", type=float, default=1.0)
    args = parser.parse_args()
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        runs["no_chat"] = run(args.incidents, None, Path(tmp))
        fast = SlackApi()
        with fast.running():
            runs["slack_fast"] = run(args.incidents, fast, Path(tmp))
        slow = SlackApi()
        slow.delay_s = args.slow_s
        with slow.running():
            runs["slack_slow"] = run(args.incidents, slow, Path(tmp))
    base = runs["no_chat"]["pipeline_ms"]["p50"]
    result = {
        "machine": machine(), "incidents": args.incidents, "slow_slack_s": args.slow_s,
        "runs": runs,
        "ratio_p50_slow_to_none": round(runs["slack_slow"]["pipeline_ms"]["p50"] / base, 2),
        "ratio_p50_fast_to_none": round(runs["slack_fast"]["pipeline_ms"]["p50"] / base, 2),
        "targets": {"ratio_p50_slow_to_none_max": 1.5},
        "note": "pipeline_ms = AlertReceived.at -> first gate decision (approval mode, rules, "
                "targets that do not exist); a slow Slack delays only its own messages",
    }
    path = write_result("chat_delivery", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
