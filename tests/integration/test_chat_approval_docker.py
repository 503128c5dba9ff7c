"""End to end on the real Docker engine: an alert in approval mode posts a Slack approval
message (to a loopback server speaking Slack's Web API), a signed click approves it, the
container is restarted, and the message shows the verified outcome; a forged signature, a
replayed timestamp and a user not on the list each change nothing."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.bootstrap import build_services
from tests.conftest import make_settings
from tests.support.chat_servers import SlackApi, block_text, buttons
from tests.support.docker_helpers import (  # noqa: F401 (fixtures)
    ContainerJanitor,
    client_fixture,
    docker_client,
    janitor_fixture,
)
from tests.support.payloads import alert, notification
from tests.support.slack_clicks import CHANNEL, SIGNING_SECRET, click, eventually

pytestmark = pytest.mark.integration
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]


def started_at(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"]["StartedAt"])


async def test_a_slack_click_restarts_the_container_and_the_message_shows_it_verified(
        tmp_path: Path, janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(LOOP, prefix="web", labels={"sre-agent.managed": "true"})
    before = started_at(box)
    slack = SlackApi()
    with slack.running():
        settings = make_settings(
            tmp_path, mode="approval", verify_deadline_s=15, verify_stable_s=1.0,
            docker_stop_timeout_s=2, slack_bot_token=slack.token, slack_channel=CHANNEL,
            slack_api_url=slack.api_url, slack_signing_secret=SIGNING_SECRET,
            slack_approvers="U0ONCALL", delivery_poll_s=0.1)
        services = build_services(settings)
        app = create_app(settings, services=services)
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://agent") as c:
            body = notification([alert(fingerprint=f"fp-{box.name}",
                                       labels={"container": box.name})],
                                group_key=f"g-{box.name}")
            inc = (await c.post("/webhook/alertmanager", json=body)).json()["incidents"][0]
            msg = await eventually(lambda: slack.messages and buttons(
                slack.only_message().blocks) and slack.only_message(), timeout=60,
                what="the approval message with buttons")
            approve = next(b for b in buttons(msg.blocks) if b["action_id"] == "approve")
            aid = approve["value"]
            assert box.name in block_text(msg.blocks)

            forged = await click(c, "U0ONCALL", "approve", aid, secret="x" * 32)
            replayed = await click(c, "U0ONCALL", "approve", aid,
                                   timestamp=int(time.time()) - 301)
            stranger = await click(c, "U0STRANGER", "approve", aid)
            assert (forged.status_code, replayed.status_code, stranger.status_code) == (
                401, 401, 200)
            await eventually(lambda: slack.ephemerals, what="the stranger's answer")
            action = (await c.get("/actions", params={"incident": inc})).json()[0]
            assert action["status"] == "pending_approval" and started_at(box) == before

            assert (await click(c, "U0ONCALL", "approve", aid)).status_code == 200
            await eventually(
                lambda: "verified: the target recovered" in block_text(msg.blocks),
                timeout=60, what="the message showing the verified restart")
            assert buttons(msg.blocks) == []
            assert "approved by <@U0ONCALL>" in block_text(msg.blocks)
            action = (await c.get("/actions", params={"incident": inc})).json()[0]
            assert action["status"] == "verified"
            assert action["decided_by"] == "operator:slack:U0ONCALL"
            started = (await c.get("/audit", params={"type": "ActionStarted"})).json()["items"]
            assert len(started) == 1
    assert started_at(box) != before
    box.reload()
    assert box.status == "running"
