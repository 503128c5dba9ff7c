"""Slack: approval messages, signed button clicks and in-place updates, against a loopback
server speaking Slack's Web API (tests/support/chat_servers.py), with the real agent app on a
real SQLite store (the pipeline's container parts faked; test_chat_approval_docker.py runs the
same loop on the real Docker engine)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.bootstrap import Fakes, build_services
from sre_agent.domain.diagnosis import ActionKind
from tests.conftest import make_settings
from tests.support.chat_servers import SlackApi, block_text, buttons
from tests.support.fakes import FakeAnalyzer, FakeBackend, FakeResolver, FakeVerifier
from tests.support.payloads import notification
from tests.support.slack_clicks import CHANNEL, SIGNING_SECRET, click, click_body, eventually

pytestmark = pytest.mark.integration
URL = "/webhook/alertmanager"


@pytest.fixture
def slack() -> Iterator[SlackApi]:
    server = SlackApi()
    with server.running():
        yield server


def slack_settings(slack: SlackApi, **overrides: Any) -> dict[str, Any]:
    return {"mode": "approval", "slack_bot_token": slack.token, "slack_channel": CHANNEL,
            "slack_api_url": slack.api_url, "slack_signing_secret": SIGNING_SECRET,
            "slack_approvers": "U0ANN,U0BOB", "delivery_poll_s": 0.1,
            "delivery_backoff_s": 0.05, "public_url": "https://sre.example.test",
            **overrides}


@asynccontextmanager
async def agent(tmp_path: Path, slack: SlackApi, *, backend: FakeBackend | None = None,
                **overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, FakeBackend, Any]]:
    settings = make_settings(tmp_path, **slack_settings(slack, **overrides))
    backend = backend or FakeBackend()
    container = build_services(
        settings, backends={ActionKind.RESTART_CONTAINER: backend},
        fakes=Fakes(analyzer=FakeAnalyzer(), resolver=FakeResolver(), sources=[],
                    verifier=FakeVerifier()))
    app = create_app(settings, services=container)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        yield c, backend, container


async def pending_action(c: httpx.AsyncClient) -> dict[str, Any]:
    async def one() -> dict[str, Any] | None:
        items = (await c.get("/actions", params={"status": "pending_approval"})).json()
        return items[0] if items else None
    found: dict[str, Any] = await eventually(one, what="a pending approval")
    return found


async def status_of(c: httpx.AsyncClient, action_id: str) -> str:
    actions = (await c.get("/actions")).json()
    return str(next(a["status"] for a in actions if a["id"] == action_id))


async def audit(c: httpx.AsyncClient, type_: str) -> list[dict[str, Any]]:
    return list((await c.get("/audit", params={"type": type_, "limit": 1000})).json()["items"])


async def test_a_signed_click_approves_and_the_message_follows_the_action(
        tmp_path: Path, slack: SlackApi) -> None:
    async with agent(tmp_path, slack) as (c, backend, container):
        inc = (await c.post(URL, json=notification())).json()["incidents"][0]
        action = await pending_action(c)
        msg = await eventually(lambda: slack.messages and slack.only_message(),
                               what="the approval message")
        assert [(b["action_id"], b["value"]) for b in buttons(msg.blocks)] == [
            ("approve", action["id"]), ("reject", action["id"])]
        text = block_text(msg.blocks)
        assert "TargetDown" in text and "critical" in text and "fake" in text
        assert f"https://sre.example.test/incidents/{inc}" in text
        assert backend.executed == []
        slack_status = (await c.get("/status")).json()["components"]["slack"]
        assert slack_status == {"status": "configured", "detail":
                                f"bot in {CHANNEL}; Approve/Reject buttons for 2 approver(s)"}

        r = await click(c, "U0ANN", "approve", action["id"])
        assert r.status_code == 200
        await eventually(lambda: _is(c, action["id"], "verified"), what="verified")
        assert len(backend.executed) == 1
        await eventually(lambda: "verified: the target recovered" in block_text(msg.blocks),
                         what="message updated")
        assert buttons(msg.blocks) == [] and msg.updates >= 1
        assert "approved by <@U0ANN>" in block_text(msg.blocks)
        (approved,) = await audit(c, "ActionApproved")
        assert approved["actor"] == "operator:slack:U0ANN"
        assert any(e["user"] == "U0ANN" and "Approved" in e["text"] for e in slack.ephemerals)

        # The incident page links to the message; the resolution updates it once more.
        page = await c.get(f"/incidents/{inc}", headers={"Accept": "text/html"})
        assert f"https://example.slack.com/archives/{CHANNEL}/p" in page.text
        link = f"https://example.slack.com/archives/{CHANNEL}/p{msg.ts.replace('.', '')}"
        assert (await c.get(f"/incidents/{inc}")).json()["chat"] == {"slack": link}
        report = (await c.get(f"/incidents/{inc}/report")).text
        assert f"- **Slack message:** <{link}>" in report
        assert "Slack: posted incident" in report
        await c.post(URL, json=notification([{**notification()["alerts"][0],
                                               "status": "resolved",
                                               "endsAt": "2026-11-21T20:25:00Z"}]))
        await eventually(lambda: "resolved" in msg.text.lower(), what="resolved update")
        await container.delivery.wait_idle(10)
        assert len(slack.messages) == 1  # one message, updated in place
        everything = json.dumps((await c.get("/audit", params={"limit": 1000})).json())
        assert slack.token not in everything and SIGNING_SECRET not in everything
        auth = {r.headers.get("authorization") for r in slack.requests
                if r.path.startswith("/api/")}
        assert auth == {f"Bearer {slack.token}"}


async def _is(c: httpx.AsyncClient, action_id: str, status: str) -> bool:
    return await status_of(c, action_id) == status


async def test_forged_replayed_and_unlisted_clicks_change_nothing(
        tmp_path: Path, slack: SlackApi) -> None:
    async with agent(tmp_path, slack) as (c, backend, _):
        await c.post(URL, json=notification())
        action = await pending_action(c)
        aid = action["id"]
        forged = await click(c, "U0ANN", "approve", aid, secret="not-the-signing-secret")
        assert forged.status_code == 401 and "signature" in forged.json()["detail"]
        replayed = await click(c, "U0ANN", "approve", aid, timestamp=int(time.time()) - 600)
        assert replayed.status_code == 401 and "5 minutes" in replayed.json()["detail"]
        body = click_body("U0ANN", "approve", aid)
        tampered = await c.post("/integrations/slack/interactions", content=body + b"x",
                                headers={"X-Slack-Request-Timestamp": "1",
                                         "X-Slack-Signature": "v0=00"})
        assert tampered.status_code == 401
        unsigned = await c.post("/integrations/slack/interactions", content=body)
        assert unsigned.status_code == 401
        stranger = await click(c, "U0EVE", "approve", aid)
        assert stranger.status_code == 200
        await eventually(lambda: slack.ephemerals, what="an ephemeral answer")
        (reply,) = slack.ephemerals
        assert reply["user"] == "U0EVE" and "not allowed" in reply["text"]
        assert await status_of(c, aid) == "pending_approval"
        assert await audit(c, "ActionApproved") == [] and backend.executed == []


async def test_double_clicks_clicks_after_others_and_after_expiry_answer_clearly(
        tmp_path: Path, slack: SlackApi) -> None:
    async with agent(tmp_path, slack) as (c, backend, _):
        await c.post(URL, json=notification())
        action = await pending_action(c)
        aid = action["id"]
        assert (await click(c, "U0ANN", "reject", aid)).status_code == 200
        assert (await click(c, "U0ANN", "reject", aid)).status_code == 200
        assert (await click(c, "U0BOB", "approve", aid)).status_code == 200
        await eventually(lambda: len(slack.ephemerals) == 3, what="three answers")
        first, again, other = (e["text"] for e in slack.ephemerals)
        assert first.startswith("Rejected")
        assert "already decided by you" in again and "nothing changed" in again
        assert "already decided by slack:U0ANN" in other and "rejected" in other
        assert await status_of(c, aid) == "rejected" and backend.executed == []
        assert len(await audit(c, "ActionRejected")) == 1
        assert await audit(c, "ActionApproved") == []
        msg = await eventually(lambda: slack.messages and slack.only_message(), what="posted")
        await eventually(lambda: "rejected" in block_text(msg.blocks), what="rejection shown")
        assert buttons(msg.blocks) == []


async def test_a_click_after_the_approval_window_expires_it(tmp_path: Path,
                                                            slack: SlackApi) -> None:
    async with agent(tmp_path, slack, approval_ttl_s=1) as (c, backend, _):
        await c.post(URL, json=notification())
        action = await pending_action(c)
        await asyncio.sleep(1.2)
        assert (await click(c, "U0ANN", "approve", action["id"])).status_code == 200
        await eventually(lambda: slack.ephemerals, what="an answer")
        assert "expired" in slack.ephemerals[0]["text"]
        assert await status_of(c, action["id"]) == "expired" and backend.executed == []


async def test_rate_limits_are_retried_after_retry_after_and_slack_never_blocks(
        tmp_path: Path, slack: SlackApi) -> None:
    slack.fail_next(429, 1, retry_after="1")
    slack.fail_next(503, 1)
    async with agent(tmp_path, slack) as (c, _, container):
        started = time.monotonic()
        await c.post(URL, json=notification())
        await container.runner.wait_idle(10)
        await pending_action(c)
        pipeline_s = time.monotonic() - started
        msg = await eventually(lambda: slack.messages and slack.only_message(), what="posted")
        await eventually(lambda: buttons(msg.blocks), what="the buttons (an update)")
        async def posted() -> list[dict[str, Any]]:
            return [d for d in await audit(c, "NotificationDelivered")
                    if d["data"]["op"] == "post"]
        (done,) = await eventually(posted, what="the post recorded")
        tries = await audit(c, "NotificationAttempted")
        assert [(t["data"]["status_code"], t["data"]["retry_in_s"]) for t in tries] == [
            (429, 1.0), (503, 0.1)]
        assert done["data"]["attempt"] == 3 and done["data"]["ts"] == msg.ts
        assert done["at"] > tries[0]["at"]
        assert pipeline_s < 1.0  # the approval did not wait for Slack's retries


async def test_a_slow_slack_does_not_hold_the_pipeline(tmp_path: Path,
                                                       slack: SlackApi) -> None:
    slack.delay_s = 3.0
    async with agent(tmp_path, slack) as (c, _, container):
        await c.post(URL, json=notification())
        await container.runner.wait_idle(2)
        await pending_action(c)
        assert await audit(c, "NotificationDelivered") == []
        slack.delay_s = 0
        await eventually(lambda: slack.messages, what="the message, eventually")


async def test_invalid_auth_fails_once_without_retry_and_without_the_token(
        tmp_path: Path, slack: SlackApi) -> None:
    slack.token = "xoxb-another-token-entirely"
    async with agent(tmp_path, slack, slack_bot_token="xoxb-wrong-0000-secret") as (c, _, _):
        await c.post(URL, json=notification())
        failed = await eventually(lambda: audit(c, "NotificationFailed"), what="failure")
        assert failed[0]["data"]["error"] == "Slack chat.postMessage: invalid_auth"
        assert failed[0]["data"]["attempt"] == 1
        assert await audit(c, "NotificationAttempted") == []
        assert "xoxb-wrong" not in json.dumps((await c.get("/audit")).json())


async def test_interactions_refuse_bad_requests_clearly(tmp_path: Path,
                                                       slack: SlackApi) -> None:
    async with agent(tmp_path, slack) as (c, _, _):
        not_form = await click(c, "U0ANN", "approve", "x", body=b"{not a form")
        assert not_form.status_code == 400 and "payload" in not_form.json()["detail"]
        ignored = await click(c, "U0ANN", "approve", "x",
                              body=b"payload=" + b'{"type":"view_submission"}')
        assert ignored.status_code == 200
        unknown = await click(c, "U0ANN", "approve", "act-nope")
        assert unknown.status_code == 200
        await eventually(lambda: slack.ephemerals, what="an answer")
        assert "does not exist" in slack.ephemerals[0]["text"]
    (tmp_path / "off").mkdir()
    async with agent(tmp_path / "off", slack, slack_signing_secret=None) as (c, _, _):
        off = await click(c, "U0ANN", "approve", "x")
        assert off.status_code == 401 and "not configured" in off.json()["detail"]
