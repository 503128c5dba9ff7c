"""The incident page for 3 a.m.: bounded size for huge incidents (alerts paginated, the
timeline folded, the JSON paged), and the operator's incident commands over the API.

Apps are built through ``create_app`` on a real SQLite file; requests go through ASGITransport.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from tests.conftest import make_settings
from tests.support.components import settle
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
HTML = {"accept": "text/html"}
URL = "/webhook/alertmanager"




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
    assert small["acknowledged_by"] is None and small["assignee"] is None
    page = await client.get(f"/incidents/{inc}", headers=HTML)
    assert 'class="pager"' not in page.text  # one page: no pager


# --- operator commands on an incident ----------------------------------------------------------
async def test_ack_assign_note_resolve_over_the_api(client: httpx.AsyncClient) -> None:
    inc = (await client.post(URL, json=notification())).json()["incidents"][0]
    await settle(client)
    who = {"x-operator": "alice"}
    r = await client.post(f"/incidents/{inc}/ack", json={"comment": "looking"}, headers=who)
    assert r.status_code == 200, r.text
    assert r.json()["event"]["type"] == "IncidentAcknowledged"
    assert r.json()["event"]["actor"] == "operator:alice"
    again = await client.post(f"/incidents/{inc}/ack", headers={"x-operator": "bob"})
    assert again.status_code == 409 and "already acknowledged by operator:alice" in again.text

    r = await client.post(f"/incidents/{inc}/assign", json={"assignee": "bob"}, headers=who)
    assert r.status_code == 200 and r.json()["event"]["data"]["assignee"] == "bob"
    for bad in ({}, {"assignee": ""}, {"assignee": "bob <script>"}, {"assignee": "x" * 65}):
        r = await client.post(f"/incidents/{inc}/assign", json=bad)
        assert r.status_code == 422, (bad, r.text)
    r = await client.post(f"/incidents/{inc}/note", json={"text": "DNS looked <odd>"},
                          headers=who)
    assert r.status_code == 200 and r.json()["event"]["data"] == {"text": "DNS looked <odd>"}
    for bad in ({}, {"text": ""}, {"text": "   "}, {"text": "x" * 4001}):
        assert (await client.post(f"/incidents/{inc}/note", json=bad)).status_code == 422, bad

    detail = (await client.get(f"/incidents/{inc}")).json()
    assert (detail["acknowledged_by"], detail["assignee"]) == ("operator:alice", "bob")
    assert detail["acknowledged_at"]
    page = (await client.get(f"/incidents/{inc}", headers=HTML)).text
    assert "by operator:alice at" in page.split('data-testid="acknowledged"')[1][:200]
    assert "bob" in page.split('data-testid="assignee"')[1][:100]
    assert "Note from operator:alice: DNS looked &lt;odd&gt;" in page
    assert 'id="ack-btn"' not in page  # acknowledged: the button is gone

    r = await client.post(f"/incidents/{inc}/resolve", json={"reason": "fixed by hand"},
                          headers=who)
    assert r.status_code == 200 and r.json()["incident"]["status"] == "resolved"
    assert r.json()["event"]["data"] == {"reason": "fixed by hand", "manual": True}
    twice = await client.post(f"/incidents/{inc}/resolve")
    assert twice.status_code == 409 and "already resolved" in twice.text
    report = (await client.get(f"/incidents/{inc}/report")).text
    for line in ("**Acknowledged:** by operator:alice", "**Assigned to:** bob",
                 "Resolved by hand by operator:alice", "Note from operator:alice"):
        assert line in report, line
    for path in ("ack", "assign", "note", "resolve", "silence"):
        missing = await client.post(f"/incidents/inc-nope/{path}",
                                    json={"assignee": "x", "text": "x", "duration_s": 600})
        assert missing.status_code == 404 and "inc-nope" in missing.text, path


async def test_silence_without_alertmanager_is_a_clear_409(client: httpx.AsyncClient) -> None:
    inc = (await client.post(URL, json=notification())).json()["incidents"][0]
    r = await client.post(f"/incidents/{inc}/silence", json={"duration_s": 600})
    assert r.status_code == 409 and "no Alertmanager is configured" in r.text
    for bad in ({}, {"duration_s": 10}, {"duration_s": 86401}, {"duration_s": "soon"}):
        r = await client.post(f"/incidents/{inc}/silence", json=bad)
        assert r.status_code == 422, (bad, r.text)
    page = (await client.get(f"/incidents/{inc}", headers=HTML)).text
    assert 'data-testid="no-silence"' in page


async def test_silence_from_the_api_creates_it_in_a_real_alertmanager(tmp_path: Path) -> None:
    from tests.support.alertmanager import list_silences, running_alertmanager

    with running_alertmanager(tmp_path / "am") as am:
        app = create_app(make_settings(tmp_path, alertmanager_url=am.url))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://agent.test") as c:
            labels = {"alertname": "DiskFull", "instance": "db-1:9100", "job": "node",
                      "severity": "warning"}
            body = notification([alert(name="DiskFull", fingerprint="d15cf011d15cf011",
                                       labels=labels)], group_key="{}:{disk}")
            inc = (await c.post(URL, json=body)).json()["incidents"][0]
            r = await c.post(f"/incidents/{inc}/silence",
                             json={"duration_s": 1800, "comment": "disk swap tonight"},
                             headers={"x-operator": "alice"})
            assert r.status_code == 200, r.text
            event = r.json()["event"]
            assert event["type"] == "AlertSilenced" and event["actor"] == "operator:alice"
            silence_id = event["data"]["silence_id"]
            page = (await c.get(f"/incidents/{inc}", headers=HTML)).text
            assert f"silence {silence_id}" in page and "30m" in page
        found = {s["id"]: s for s in list_silences(am.url)}
        assert silence_id in found, found
        matchers = {m["name"]: m["value"] for m in found[silence_id]["matchers"]}
        assert matchers.get("alertname") == "DiskFull"
        assert "disk swap tonight" in found[silence_id]["comment"]


async def test_cookie_sessions_need_the_csrf_token_for_incident_commands(
        tmp_path: Path) -> None:
    from tests.integration.test_web_api import log_in
    from tests.support.browser import OPERATOR_TOKEN

    app = create_app(make_settings(tmp_path, operator_token=OPERATOR_TOKEN))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test") as c:
        auth = {"authorization": f"Bearer {OPERATOR_TOKEN}"}
        inc = (await c.post(URL, json=notification(), headers=auth)).json()["incidents"][0]
        cookie, csrf = await log_in(c, "carol")
        for path, body in (("ack", {}), ("note", {"text": "x"}), ("resolve", {})):
            r = await c.post(f"/incidents/{inc}/{path}", json=body, headers={"cookie": cookie})
            assert r.status_code == 403 and "CSRF" in r.text, path
        assert (await c.post(f"/incidents/{inc}/ack")).status_code == 401
        r = await c.post(f"/incidents/{inc}/ack", headers={"cookie": cookie,
                                                           "x-csrf-token": csrf})
        assert r.status_code == 200 and r.json()["event"]["actor"] == "operator:carol"


# --- evidence, readable --------------------------------------------------------------------------
async def test_page_shows_prometheus_values_next_to_the_alert_threshold(tmp_path: Path) -> None:
    from tests.support.prometheus import running_prometheus

    with running_prometheus(tmp_path / "prom", ["127.0.0.1:9"], "nothing") as prom:
        app = create_app(make_settings(tmp_path, prometheus_url=prom.url))
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://agent.test") as c:
            body = notification([alert(name="ErrorRate", fingerprint="e77e77e77e77e77e",
                                       expr="vector(0.93) > 0.5")], group_key="{}:{err}")
            inc = (await c.post(URL, json=body)).json()["incidents"][0]
            await settle(c)
            page = (await c.get(f"/incidents/{inc}", headers=HTML)).text
    section = page.split('id="sec-evidence"', 1)[1].split("</section>", 1)[0]
    assert "Prometheus" in section and "Alert expression" in section
    assert "vector(0.93) &gt; 0.5" in section
    assert "<dt>Value</dt><dd>0.93</dd>" in section
    assert "<dt>Alert threshold</dt><dd>&gt; 0.5</dd>" in section
    assert "true now" in section
