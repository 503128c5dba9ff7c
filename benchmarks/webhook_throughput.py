"""Webhook throughput: the agent (durable SQLite writes) against a bare FastAPI endpoint.

Both run under uvicorn on this machine, driven in one run by the same async load generator
(concurrency 32, 1-alert notifications with distinct fingerprints). Also times one 5,000-alert
notification. Writes benchmarks/results/webhook_throughput.json.

    .venv/bin/python benchmarks/webhook_throughput.py [--requests 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

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

TOKEN = "bench-webhook-token"


def body(i: int) -> bytes:
    return json.dumps(notification([alert(fingerprint=f"bench{i:08d}")],
                                   group_key=f"bench-group-{i}")).encode()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    headers = {"content-type": "application/json", "authorization": f"Bearer {TOKEN}"}
    result: dict[str, object] = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        bare_port, agent_port = free_port(), free_port()
        bare = start_server([PYTHON, "-m", "uvicorn", "benchmarks.bare_app:app", "--port",
                             str(bare_port), "--log-level", "warning", "--no-access-log"], {},
                            f"http://127.0.0.1:{bare_port}/docs")
        agent = start_server(
            [PYTHON, "-m", "sre_agent", "serve", "--port", str(agent_port)],
            {"SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp}/bench.db",
             "SRE_AGENT_WEBHOOK_TOKEN": TOKEN, "SRE_AGENT_LOG_LEVEL": "WARNING",
             "SRE_AGENT_MODE": "observe"},
            f"http://127.0.0.1:{agent_port}/ready")
        try:
            warm = min(300, args.requests // 10)
            bare_url = f"http://127.0.0.1:{bare_port}/webhook/alertmanager"
            agent_url = f"http://127.0.0.1:{agent_port}/webhook/alertmanager"
            await drive(bare_url, body, warm, args.concurrency, headers)
            await drive(agent_url, lambda i: body(10_000_000 + i), warm, args.concurrency,
                        headers)
            result["bare"] = await drive(bare_url, body, args.requests, args.concurrency,
                                         headers)
            result["agent"] = await drive(agent_url, body, args.requests, args.concurrency,
                                          headers)
            # Closed-loop latency at concurrency 32 is mostly queueing (32 / throughput); the
            # service time of one request is measured alone, at concurrency 1.
            result["bare_c1"] = await drive(bare_url, lambda i: body(20_000_000 + i), 500, 1,
                                            headers)
            result["agent_c1"] = await drive(agent_url, lambda i: body(30_000_000 + i), 500, 1,
                                             headers)
            b, a = result["bare"], result["agent"]
            assert isinstance(a, dict) and isinstance(b, dict)
            result["throughput_ratio"] = round(a["per_second"] / b["per_second"], 3)
            big = json.dumps(notification([alert(fingerprint=f"big{i:05d}",
                                                 labels={"instance": f"h{i}:9100"})
                                           for i in range(5000)],
                                          group_key="big")).encode()
            t0 = time.perf_counter()
            async with httpx.AsyncClient(timeout=60) as client:
                r = await client.post(agent_url, content=big, headers=headers)
            result["big_notification"] = {
                "alerts": 5000, "bytes": len(big), "status": r.status_code,
                "seconds": round(time.perf_counter() - t0, 3)}
        finally:
            stop(agent)
            stop(bare)
    result["targets"] = {"throughput_ratio_min": 0.5, "agent_p99_ms_max": 50,
                         "big_notification_s_max": 2.0}
    path = write_result("webhook_throughput", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    asyncio.run(main())
