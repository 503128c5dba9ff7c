"""A huge incident on the page and in the JSON: one notification of 5,000 alerts, then the
incident page (``Accept: text/html``) and ``GET /incidents/{id}`` (default pages) requested
``--requests`` times each, in process through ASGITransport on a fresh SQLite file.

Reports the body sizes (before issue 13: page 7.5 MB, JSON 5.4 MB) and the latency p50/p99 of
each. Writes benchmarks/results/incident_page.json.

    .venv/bin/python benchmarks/incident_page.py [--alerts 5000] [--requests 20]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.conftest import make_settings
from tests.support.payloads import alert, notification

from benchmarks.common import machine, write_result
from sre_agent.api.app import create_app

TARGETS = {"page_bytes_max": 300_000, "json_bytes_max": 500_000, "page_p99_ms_max": 1000.0}


def alerts(n: int) -> list[dict[str, Any]]:
    return [alert(name="HighLatency", fingerprint=f"{i:016x}",
                  labels={"alertname": "HighLatency", "instance": f"web-{i}:8080",
                          "job": "web", "severity": "warning"},
                  annotations={"summary": f"p99 latency above 2s on web-{i}",
                               "description": "latency " * 20}) for i in range(n)]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


async def run(n: int, requests: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="bench-incident-page-"))
    app = create_app(make_settings(tmp, log_format="json", log_level="warning"))
    out: dict[str, Any] = {"machine": machine(), "alerts": n, "requests": requests,
                           "targets": TARGETS}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bench") as c:
        body = notification(alerts(n), group_key="{}:{bench}")
        inc = (await c.post("/webhook/alertmanager", json=body)).json()["incidents"][0]
        for _ in range(600):
            if (await c.get("/status")).json()["backlog"] == 0:
                break
            await asyncio.sleep(0.05)
        for name, headers in (("page", {"accept": "text/html"}), ("json", {})):
            times: list[float] = []
            size = 0
            for _ in range(requests):
                start = time.perf_counter()
                r = await c.get(f"/incidents/{inc}", headers=headers)
                times.append((time.perf_counter() - start) * 1000)
                assert r.status_code == 200, r.text[:200]
                size = len(r.content)
            out[name] = {"bytes": size, "p50_ms": round(statistics.median(times), 1),
                         "p99_ms": pct(times, 0.99)}
    out["verdicts"] = {
        "page_bytes": out["page"]["bytes"] <= TARGETS["page_bytes_max"],
        "json_bytes": out["json"]["bytes"] <= TARGETS["json_bytes_max"],
        "page_p99_ms": out["page"]["p99_ms"] <= TARGETS["page_p99_ms_max"]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--alerts", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=20)
    args = parser.parse_args()
    result = asyncio.run(run(args.alerts, args.requests))
    print(write_result("incident_page", result))
    print({k: result[k] for k in ("page", "json", "verdicts")})


if __name__ == "__main__":
    main()
