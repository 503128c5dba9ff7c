"""A Slack click seen from the dashboard, in a real browser (Debian's Chromium, Playwright):
the agent served over real HTTP posts the approval message to a loopback Slack Web API, the
incident page links to the message, and a signed click sent over HTTP approves the action
while the page follows live."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.browser import (
    OPERATOR_TOKEN,
    AgentServer,
    fake_agent_app,
    launch_chromium,
    operator_client,
    require_chromium,
    wait_for,
)
from tests.support.chat_servers import SlackApi, block_text, buttons
from tests.support.components import require
from tests.support.payloads import notification
from tests.support.slack_clicks import CHANNEL, PATH, SIGNING_SECRET, click_body, signed_headers

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the browser fixture skips locally and fails under CI=true
    sync_playwright = None

pytestmark = pytest.mark.e2e
WAIT_MS = 15_000
if sync_playwright is not None:
    # expect() waits 5 s by default, page.set_default_timeout does not reach it: these files
    # run beside others on the test workers, where a page can take longer than that.
    expect.set_options(timeout=WAIT_MS)


@pytest.fixture
def browser() -> Iterator[Any]:
    require_chromium()
    require(sync_playwright is not None, "playwright is not installed")
    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        try:
            yield chromium
        finally:
            chromium.close()


def test_the_incident_page_links_to_the_slack_message_and_follows_a_click(
        browser: Any, tmp_path: Path) -> None:
    slack = SlackApi()
    with slack.running():
        app, _container, backend = fake_agent_app(
            tmp_path, operator_token=OPERATOR_TOKEN, slack_bot_token=slack.token,
            slack_channel=CHANNEL, slack_api_url=slack.api_url,
            slack_signing_secret=SIGNING_SECRET, slack_approvers="U0ANN",
            delivery_poll_s=0.1)
        server = AgentServer(app).start()
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        requested: list[str] = []
        context.on("request", lambda req: requested.append(req.url))
        try:
            with operator_client(server.base_url) as api:
                inc = api.post("/webhook/alertmanager", json=notification()).json()[
                    "incidents"][0]
                wait_for(lambda: slack.messages and buttons(slack.only_message().blocks),
                         what="the approval message")
                wait_for(lambda: api.get(f"/incidents/{inc}").json()["chat"],
                         what="the message recorded")
            msg = slack.only_message()
            aid = buttons(msg.blocks)[0]["value"]
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            page.goto(f"{server.base_url}/login?next=/incidents/{inc}")
            page.get_by_label("Your name").fill("watcher")
            page.get_by_label("Operator token").fill(OPERATOR_TOKEN)
            page.get_by_role("button", name="Log in").click()
            expect(page.locator("h1")).to_contain_text("TargetDown")
            permalink = (f"https://example.slack.com/archives/{CHANNEL}/p"
                         f"{msg.ts.replace('.', '')}")
            link = page.get_by_test_id("chat").get_by_role("link", name="Slack message")
            expect(link).to_have_attribute("href", permalink)
            page.goto(f"{server.base_url}/status")  # the dashboard's row links to it too
            row = page.locator(f'tr[data-incident-id="{inc}"]')
            expect(row.get_by_test_id("row-chat").get_by_role(
                "link", name="Slack message")).to_have_attribute("href", permalink)
            page.goto(f"{server.base_url}/incidents/{inc}")
            expect(page.locator("#sec-decisions")).to_contain_text("pending approval")

            body = click_body("U0ANN", "approve", aid)
            r = httpx.post(server.base_url + PATH, content=body, headers=signed_headers(body))
            assert r.status_code == 200
            expect(page.locator("#sec-decisions")).to_contain_text("verified", timeout=WAIT_MS)
            expect(page.locator("#sec-timeline")).to_contain_text("slack:U0ANN")
            wait_for(lambda: "verified: the target recovered" in block_text(msg.blocks),
                     what="the Slack message updated")
            assert len(backend.executed) == 1
        finally:
            context.close()
            server.stop()
    strangers = [u for u in requested if not u.startswith(server.base_url + "/")]
    assert strangers == []
