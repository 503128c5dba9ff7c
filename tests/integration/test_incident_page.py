"""The incident page for 3 a.m.: bounded size for huge incidents (alerts paginated, the
timeline folded, the JSON paged), and the operator's incident commands over the API.

Apps are built through ``create_app`` on a real SQLite file; requests go through ASGITransport.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from tests.conftest import make_settings
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
HTML = {"accept": "text/html"}
URL = "/webhook/alertmanager"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(make_settings(tmp_path))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test") as c:
        yield c


async def settle(c: httpx.AsyncClient) -> None:
    """Wait until the pipeline has nothing queued or running."""
    for _ in range(400):
        if (await c.get("/status")).json()["backlog"] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("pipeline did not settle")


def many_alerts(n: int) -> list[dict[str, Any]]:
    return [alert(name="HighLatency", fingerprint=f"{i:016x}",
                  labels={"alertname": "HighLatency", "instance": f"web-{i}:8080",
                          "job": "web", "severity": "warning"},
                  annotations={"summary": f"p99 latency above 2s on web-{i}",
                               "description": "latency " * 20})
            for i in range(n)]


async def test_a_5000_alert_incident_page_and_json_stay_small(
        client: httpx.AsyncClient) -> None:
    r = await client.post(URL, json=notification(many_alerts(5000), group_key="{}:{big}"))
    assert r.status_code == 200, r.text
    inc = r.json()["incidents"][0]
    await settle(client)

    page = await client.get(f"/incidents/{inc}", headers=HTML)
    assert page.status_code == 200
    assert len(page.content) < 300_000, len(page.content)
    assert "Alerts 1-100 of 5,000" in page.text
    assert 'href="?alerts_offset=100&amp;alerts_limit=100#sec-alerts"' in page.text
    assert "4,995 more alerts received" in page.text  # the first 5 shown, then one row
    assert page.text.count('class="tl-item') < 30

    last = await client.get(f"/incidents/{inc}?alerts_offset=4900", headers=HTML)
    assert "Alerts 4,901-5,000 of 5,000" in last.text and 'rel="next"' not in last.text
    assert "web-4999:8080" in last.text and "web-0:8080" not in last.text.split("sec-alerts")[1]

    detail = await client.get(f"/incidents/{inc}")
    assert len(detail.content) < 500_000, len(detail.content)
    body = detail.json()
    assert body["alerts_total"] == 5000 and len(body["alerts"]) == 100
    assert body["alerts_offset"] == 0 and body["alerts_limit"] == 100
    assert body["events_total"] >= 5001 and len(body["events"]) == 200
    # Walk the whole timeline with the cursor: every event once, in order.
    seqs: list[int] = []
    since: int | None = 0
    while since is not None:
        part = (await client.get(f"/incidents/{inc}",
                                 params={"events_since": since, "events_limit": 1000})).json()
        seqs += [e["seq"] for e in part["events"]]
        since = part["events_next_since"]
    assert len(seqs) == body["events_total"] == len(set(seqs)) and seqs == sorted(seqs)

    tail = (await client.get(f"/incidents/{inc}",
                             params={"alerts_offset": 4990, "alerts_limit": 1000})).json()
    assert [a["labels"]["instance"] for a in tail["alerts"]][-1] == "web-4999:8080"
    assert len(tail["alerts"]) == 10


async def test_page_bounds_are_checked(client: httpx.AsyncClient) -> None:
    inc = (await client.post(URL, json=notification())).json()["incidents"][0]
    for params in ({"alerts_limit": 1001}, {"alerts_limit": 0}, {"alerts_offset": -1},
                   {"events_limit": 5000}, {"events_since": "x"}):
        r = await client.get(f"/incidents/{inc}", params=params)
        assert r.status_code == 422, (params, r.text)
    small = (await client.get(f"/incidents/{inc}")).json()
    assert small["events_next_since"] is None and small["alerts_total"] == 1
    page = await client.get(f"/incidents/{inc}", headers=HTML)
    assert 'class="pager"' not in page.text  # one page: no pager
