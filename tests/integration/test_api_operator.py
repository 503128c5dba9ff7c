"""Operator endpoints: status, control changes as events, audit filters, metrics, OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration


async def test_status_reports_mode_counts_and_components(client: httpx.AsyncClient) -> None:
    await client.post("/webhook/alertmanager", json=notification())
    s = (await client.get("/status")).json()
    assert s["mode"] == "approval" and s["paused"] is False
    # The pipeline may already have escalated it (unresolved target): both mean unresolved.
    assert s["incidents"]["open"] + s["incidents"]["escalated"] == 1
    assert s["store"]["status"] == "ok"
    assert s["last_alert_at"] is not None
    assert s["components"]["llm"]["status"] == "disabled"


async def test_control_changes_are_events_with_the_operator(client: httpx.AsyncClient) -> None:
    r = await client.post("/control/mode", json={"mode": "dry_run", "reason": "testing"},
                          headers={"X-Operator": "alice"})
    assert r.status_code == 200 and r.json()["mode"] == "dry_run"
    assert (await client.post("/control/pause", headers={"X-Operator": "bob"})).json()["paused"]
    s = (await client.get("/status")).json()
    assert s["mode"] == "dry_run" and s["paused"] is True
    await client.post("/control/resume")
    events = (await client.get("/audit", params={"type": ["ModeChanged", "Paused", "Resumed"]}))
    actors = [(e["type"], e["actor"]) for e in events.json()["items"]]
    assert actors == [("ModeChanged", "operator:alice"), ("Paused", "operator:bob"),
                      ("Resumed", "operator:token")]


async def test_control_rejects_unknown_mode_naming_the_field(client: httpx.AsyncClient) -> None:
    r = await client.post("/control/mode", json={"mode": "yolo"})
    assert r.status_code == 422 and "mode" in r.text


async def test_incident_list_filters_and_cursor(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await client.post("/webhook/alertmanager", json=notification(
            [alert(name=f"A{i}", fingerprint=f"f{i}")], group_key=f"g{i}"))
    await client.post("/webhook/alertmanager", json=notification(
        [alert(name="A0", fingerprint="f0", status="resolved")], group_key="g0"))
    page1 = (await client.get("/incidents", params={"limit": 2})).json()
    assert len(page1["items"]) == 2 and page1["next_cursor"] is not None
    page2 = (await client.get("/incidents", params={"limit": 2,
                                                    "cursor": page1["next_cursor"]})).json()
    ids = {i["id"] for i in page1["items"]} | {i["id"] for i in page2["items"]}
    assert len(ids) == 4
    resolved = (await client.get("/incidents", params={"status": "resolved"})).json()["items"]
    assert [i["title"] for i in resolved] == ["A0: target down"]
    assert (await client.get("/incidents", params={"status": "bogus"})).status_code == 422
    assert (await client.get("/incidents/inc-missing")).status_code == 404


async def test_audit_filters(client: httpx.AsyncClient) -> None:
    inc = (await client.post("/webhook/alertmanager", json=notification())).json()["incidents"][0]
    await client.post("/control/pause")
    only = (await client.get("/audit", params={"incident": inc})).json()["items"]
    assert {e["incident_id"] for e in only} == {inc}
    everything = (await client.get("/audit", params={"limit": 1000})).json()["items"]
    pause_seq = next(e["seq"] for e in everything if e["type"] == "Paused")
    later = (await client.get("/audit", params={"since_seq": pause_seq - 1,
                                                "type": ["Paused", "Resumed"]})).json()["items"]
    assert [e["type"] for e in later] == ["Paused"]
    limited = (await client.get("/audit", params={"limit": 1})).json()
    assert len(limited["items"]) == 1 and limited["next_since_seq"] == 1
    assert [e["seq"] for e in everything] == list(range(1, len(everything) + 1))
    v = (await client.get("/audit/verify")).json()
    assert v["ok"] is True and v["checked"] >= len(everything)


async def test_metrics_count_alerts_notifications_and_events(client: httpx.AsyncClient) -> None:
    await client.post("/webhook/alertmanager", json=notification())
    await client.post("/webhook/alertmanager", json=notification())
    await client.post("/webhook/alertmanager", content=b"{", headers={
        "content-type": "application/json"})
    text = (await client.get("/metrics")).text
    assert 'sre_agent_alerts_received_total{novelty="new",status="firing"} 1.0' in text
    assert 'sre_agent_alerts_received_total{novelty="duplicate",status="any"} 1.0' in text
    assert 'sre_agent_notifications_total{outcome="accepted"} 2.0' in text
    assert 'sre_agent_notifications_total{outcome="rejected_400"} 1.0' in text
    assert "sre_agent_webhook_latency_seconds_bucket" in text
    assert "sre_agent_incidents_open 1.0" in text
    assert 'sre_agent_events_appended_total{type="AlertReceived"} 1.0' in text


async def test_openapi_describes_every_route(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    paths = spec["paths"]
    for path in ["/webhook/alertmanager", "/webhook/alerts", "/status", "/incidents",
                 "/incidents/{incident_id}", "/audit", "/audit/verify", "/control/mode",
                 "/control/pause", "/control/resume", "/health", "/ready", "/metrics"]:
        assert path in paths, path
    body = paths["/webhook/alertmanager"]["post"]["requestBody"]["content"]["application/json"]
    ref = body["schema"]["$ref"].rsplit("/", 1)[1]
    schema = spec["components"]["schemas"][ref]
    assert "groupKey" in schema["properties"] and "alerts" in schema["properties"]
    for code in ("401", "413", "415", "422", "503"):
        assert code in paths["/webhook/alertmanager"]["post"]["responses"]
