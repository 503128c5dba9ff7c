"""The webhook over HTTP (ASGI) on a real SQLite file: auth, bad input, idempotency."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from tests.conftest import make_settings
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
URL = "/webhook/alertmanager"


async def test_accepts_real_payload_and_reports_incident(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, json=notification())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["alerts_new"] == 1 and len(body["incidents"]) == 1
    detail = (await client.get(f"/incidents/{body['incidents'][0]}")).json()
    assert detail["status"] in ("open", "escalated")  # escalated once the rules have run
    assert [e["type"] for e in detail["events"]] == ["IncidentOpened", "AlertReceived"]
    assert detail["alerts"][0]["labels"]["job"] == "target"


async def test_alias_route_is_the_same_handler(client: httpx.AsyncClient) -> None:
    first = await client.post("/webhook/alerts", json=notification())
    second = await client.post(URL, json=notification())
    assert first.json()["alerts_new"] == 1
    assert second.json() == {**second.json(), "alerts_new": 0, "alerts_duplicate": 1}


async def test_the_direct_path_answers_as_the_route_did(client: httpx.AsyncClient) -> None:
    """POST to the webhook goes past FastAPI's routing (api/middleware.py WebhookDirect):
    the request id is still set, other methods and paths still get FastAPI's answers, and the
    route is still in the OpenAPI schema."""
    r = await client.post(URL, json=notification())
    assert r.status_code == 200 and len(r.headers["x-request-id"]) == 16
    assert r.headers["content-type"] == "application/json"
    ids = {r.headers["x-request-id"], (await client.post(URL, json=notification())
                                       ).headers["x-request-id"]}
    assert len(ids) == 2
    wrong_method = await client.get(URL)
    assert wrong_method.status_code == 405 and "detail" in wrong_method.json()
    assert (await client.post(URL + "/extra", json=notification())).status_code == 404
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/webhook/alertmanager", "/webhook/alerts"} <= set(paths)


async def test_an_unexpected_failure_on_the_direct_path_is_a_plain_500(
        tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path))

    async def broken(_notification: Any) -> Any:
        raise RuntimeError("secret internals")
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://agent") as c:
        app.state.services.store.ingest = broken
        r = await c.post(URL, json=notification())
    assert r.status_code == 500 and r.json() == {"detail": "internal error"}


async def test_a_redelivery_names_the_incident_its_alerts_belong_to(
        client: httpx.AsyncClient) -> None:
    first = (await client.post(URL, json=notification())).json()
    again = (await client.post(URL, json=notification())).json()
    assert again["alerts_duplicate"] == 1 and again["incidents"] == first["incidents"]
    resolved = notification([alert(status="resolved")])
    closed = (await client.post(URL, json=resolved)).json()
    assert closed["alerts_new"] == 1 and closed["incidents"] == first["incidents"]
    closed_again = (await client.post(URL, json=resolved)).json()
    assert closed_again["alerts_duplicate"] == 1
    assert closed_again["incidents"] == first["incidents"]


async def test_redelivery_is_stored_once(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        assert (await client.post(URL, json=notification())).status_code == 200
    events = (await client.get("/audit", params={"type": "AlertReceived"})).json()["items"]
    assert len(events) == 1


async def test_resolved_closes_incident(client: httpx.AsyncClient) -> None:
    inc = (await client.post(URL, json=notification())).json()["incidents"][0]
    await client.post(URL, json=notification([alert(status="resolved")]))
    detail = (await client.get(f"/incidents/{inc}")).json()
    assert detail["status"] == "resolved" and detail["resolved_at"]
    assert detail["alerts_firing"] == 0


def _big_notification(count: int) -> dict[str, object]:
    return notification([alert(fingerprint=f"fp{i:05d}", labels={"instance": f"h{i}:9100"})
                         for i in range(count)])


# -- bad input: a clear 4xx naming the problem, never a 5xx -----------------------------------
def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


BAD_INPUTS = [
    ("empty body", b"", "application/json", 400, "empty"),
    ("not json", b"{nope", "application/json", 400, "invalid JSON"),
    ("non-utf8", b'{"version": "\xff\xfe"}', "application/json", 400, "UTF-8"),
    ("deep nesting", _nested(5000), "application/json", 400, "nested"),
    ("deep object", b'{"a":' * 5000 + b"1" + b"}" * 5000, "application/json", 400, "nested"),
    ("array", b"[]", "application/json", 422, "object"),
    ("wrong version", json.dumps({**notification(), "version": "3"}).encode(),
     "application/json", 422, "version"),
    ("text/plain", json.dumps(notification()).encode(), "text/plain", 415, "content type"),
    ("no content type", json.dumps(notification()).encode(), "", 415, "content type"),
    ("missing alerts", json.dumps({k: v for k, v in notification().items() if k != "alerts"})
     .encode(), "application/json", 422, "alerts"),
]


@pytest.mark.parametrize(("name", "body", "ctype", "status", "needle"), BAD_INPUTS,
                         ids=[b[0] for b in BAD_INPUTS])
async def test_bad_input_matrix(client: httpx.AsyncClient, name: str, body: bytes, ctype: str,
                                status: int, needle: str) -> None:
    headers = {"content-type": ctype} if ctype else {}
    r = await client.post(URL, content=body, headers=headers)
    assert r.status_code == status, r.text
    assert needle.lower() in r.text.lower()
    assert "Traceback" not in r.text


async def test_200kb_strings_are_accepted_as_data(client: httpx.AsyncClient) -> None:
    big = "x" * 200_000
    r = await client.post(URL, json=notification([alert(annotations={"description": big})]))
    assert r.status_code == 200
    inc = r.json()["incidents"][0]
    detail = (await client.get(f"/incidents/{inc}")).json()
    assert detail["alerts"][0]["annotations"]["description"] == big


async def test_5000_alerts_in_one_notification(client: httpx.AsyncClient) -> None:
    r = await client.post(URL, json=_big_notification(5000))
    assert r.status_code == 200
    assert r.json()["alerts_new"] == 5000
    again = await client.post(URL, json=_big_notification(5000))
    assert again.json()["alerts_duplicate"] == 5000


async def test_oversized_body_is_413(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, max_body_bytes=4096)
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        r = await c.post(URL, json=_big_notification(50))
        assert r.status_code == 413 and "4096" in r.text

        async def chunks():  # no Content-Length: the limit still holds while streaming
            for _ in range(10):
                yield b" " * 1024
        r = await c.post(URL, content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413


# -- auth matrix ------------------------------------------------------------------------------
WEBHOOK_TOKEN = "wh-token-123456"
OPERATOR_TOKEN = "op-token-123456"


@pytest.fixture
async def authed(tmp_path: Path):
    settings = make_settings(tmp_path, webhook_token=WEBHOOK_TOKEN,
                             operator_token=OPERATOR_TOKEN, webhook_username="am",
                             webhook_password="basic-pass-123")
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        yield c


def basic(user: str, pw: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()


@pytest.mark.parametrize(("header", "status"), [
    (None, 401),
    ("Bearer wrong-token-xyz", 401),
    (f"Bearer {OPERATOR_TOKEN}", 401),  # the operator token is not the webhook token
    (f"Bearer {WEBHOOK_TOKEN}", 200),
    (basic("am", "basic-pass-123"), 200),
    (basic("am", "wrong"), 401),
    (basic("other", "basic-pass-123"), 401),
    ("Basic !!!notbase64", 401),
    ("Digest abc", 401),
])
async def test_webhook_auth_matrix(authed: httpx.AsyncClient, header: str | None,
                                   status: int) -> None:
    headers = {"authorization": header} if header else {}
    r = await authed.post(URL, json=notification(), headers=headers)
    assert r.status_code == status, r.text


OPERATOR_ROUTES = [("GET", "/status"), ("GET", "/incidents"), ("GET", "/incidents/x"),
                   ("GET", "/audit"), ("GET", "/audit/verify"), ("POST", "/control/pause"),
                   ("POST", "/control/resume")]


@pytest.mark.parametrize(("method", "path"), OPERATOR_ROUTES)
@pytest.mark.parametrize(("header", "ok"), [
    (None, False), ("Bearer nope-nope-nope", False), (f"Bearer {WEBHOOK_TOKEN}", False),
    (f"Bearer {OPERATOR_TOKEN}", True)])
async def test_operator_auth_matrix(authed: httpx.AsyncClient, method: str, path: str,
                                    header: str | None, ok: bool) -> None:
    headers = {"authorization": header} if header else {}
    r = await authed.request(method, path, headers=headers)
    if ok:
        assert r.status_code in (200, 404), r.text
    else:
        assert r.status_code == 401
        assert OPERATOR_TOKEN not in r.text and WEBHOOK_TOKEN not in r.text


@pytest.mark.parametrize("path", ["/health", "/ready", "/metrics"])
async def test_open_endpoints_need_no_auth(authed: httpx.AsyncClient, path: str) -> None:
    assert (await authed.get(path)).status_code == 200


async def test_a_firing_after_its_own_resolution_is_recorded_as_late(
        client: httpx.AsyncClient) -> None:
    resolved = (await client.post(URL, json=notification([alert(status="resolved")]))).json()
    late = (await client.post(URL, json=notification())).json()
    assert (late["alerts_new"], late["alerts_duplicate"], late["alerts_late"]) == (0, 0, 1)
    assert late["incidents"] == resolved["incidents"]
    detail = (await client.get(f"/incidents/{resolved['incidents'][0]}")).json()
    assert detail["status"] == "resolved"
    assert [e["type"] for e in detail["events"]][-1] == "AlertReceivedLate"
    again = (await client.post(URL, json=notification())).json()
    assert (again["alerts_duplicate"], again["alerts_late"]) == (1, 0)


async def test_a_webhook_is_in_flight_from_its_body_to_its_answer_whatever_the_outcome(
        tmp_path: Path) -> None:
    """Ingest first (ingest_first.py): the pipeline waits while a webhook is in flight, so the
    route counts itself in once its body is read (a slow client does not hold analysis back)
    and out on every answer."""
    app = create_app(make_settings(tmp_path, webhook_token="tok-in-flight"))
    headers = {"authorization": "Bearer tok-in-flight", "content-type": "application/json"}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent") as c:
        services = app.state.services
        gate = services.ingest_first
        seen: list[tuple[str, int]] = []
        ingest = services.store.ingest

        async def recording_ingest(notification: Any) -> Any:
            seen.append(("ingest", gate.in_flight))
            return await ingest(notification)

        services.store.ingest = recording_ingest

        async def slow_body() -> Any:
            body = json.dumps(notification()).encode()
            yield body[:10]
            seen.append(("body", gate.in_flight))  # the route is still reading the body
            yield body[10:]

        r = await c.post(URL, content=slow_body(), headers=headers)
        assert r.status_code == 200 and seen == [("body", 0), ("ingest", 1)]
        assert gate.in_flight == 0
        for status, kwargs in ((401, {"headers": {"content-type": "application/json"}}),
                               (422, {"json": {"version": "4"}, "headers": headers}),
                               (400, {"content": b"{", "headers": headers}),
                               (415, {"content": b"{}", "headers": {
                                   **headers, "content-type": "text/plain"}})):
            assert (await c.post(URL, **kwargs)).status_code == status
            assert gate.in_flight == 0
