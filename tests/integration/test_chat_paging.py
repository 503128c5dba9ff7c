"""Microsoft Teams (Workflows webhook), PagerDuty Events v2 and a Slack incoming webhook, with
routing, against loopback servers speaking their protocols (tests/support/chat_servers.py),
through the real agent app on a real SQLite store (container parts faked)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.bootstrap import Fakes, build_services
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.evidence import ResolvedTarget
from tests.conftest import make_settings
from tests.support.chat_servers import PagerDuty, SlackApi, TeamsWorkflow
from tests.support.fakes import FakeAnalyzer, FakeBackend, FakeResolver, FakeVerifier
from tests.support.payloads import alert, notification
from tests.support.slack_clicks import eventually

pytestmark = pytest.mark.integration
URL = "/webhook/alertmanager"
UNMANAGED = [ResolvedTarget(name="db", via="label:container", verified=True, labels={})]


@pytest.fixture
def teams() -> Iterator[TeamsWorkflow]:
    server = TeamsWorkflow()
    with server.running():
        yield server


@pytest.fixture
def pagerduty() -> Iterator[PagerDuty]:
    server = PagerDuty()
    with server.running():
        yield server


@asynccontextmanager
async def agent(tmp_path: Path, *, targets: list[ResolvedTarget] | None = None,
                **overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    settings = make_settings(tmp_path, **{
        "mode": "autonomous", "delivery_poll_s": 0.1, "delivery_backoff_s": 0.05,
        "public_url": "https://sre.example.test", **overrides})
    backend = FakeBackend()
    container = build_services(
        settings, backends={ActionKind.RESTART_CONTAINER: backend},
        fakes=Fakes(analyzer=FakeAnalyzer(), resolver=FakeResolver(targets), sources=[],
                    verifier=FakeVerifier()))
    app = create_app(settings, services=container)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        yield c, container


def firing(name: str, severity: str, status: str = "firing") -> dict[str, Any]:
    return notification([alert(name=name, fingerprint=f"fp-{name}", status=status,
                               labels={"severity": severity, "container": "db"})],
                        group_key=f"g-{name}")


async def audit(c: httpx.AsyncClient, type_: str) -> list[dict[str, Any]]:
    return list((await c.get("/audit", params={"type": type_, "limit": 1000})).json()["items"])


async def test_a_critical_escalation_pages_and_posts_a_card_and_resolves_both(
        tmp_path: Path, teams: TeamsWorkflow, pagerduty: PagerDuty) -> None:
    routes = "severity=critical -> teams,pagerduty; * -> none"
    async with agent(tmp_path, targets=UNMANAGED, teams_webhook_url=teams.webhook_url,
                     pagerduty_routing_key=pagerduty.routing_key,
                     pagerduty_events_url=pagerduty.url, routes=routes) as (c, container):
        quiet = (await c.post(URL, json=firing("DiskFilling", "warning"))).json()
        inc = (await c.post(URL, json=firing("DbDown", "critical"))).json()["incidents"][0]
        await container.runner.wait_idle(10)
        assert (await c.get(f"/incidents/{inc}")).json()["status"] == "escalated"
        await eventually(lambda: pagerduty.events and teams.cards, what="page and card")
        (trigger,) = pagerduty.events
        assert trigger["event_action"] == "trigger" and trigger["dedup_key"] == inc
        assert trigger["payload"]["severity"] == "critical"
        assert "DbDown" in trigger["payload"]["summary"]
        details = trigger["payload"]["custom_details"]
        assert details["incident"] == inc and "out of scope" in details["escalation"]
        assert trigger["links"][0]["href"] == f"https://sre.example.test/incidents/{inc}"
        (card,) = teams.cards
        text = json.dumps(card)
        assert "DbDown" in text and "Diagnosis: fake" in text
        assert {"type": "Action.OpenUrl", "title": "Open incident",
                "url": f"https://sre.example.test/incidents/{inc}"} in card["actions"]

        await c.post(URL, json=firing("DbDown", "critical", status="resolved"))
        await eventually(lambda: len(pagerduty.events) == 2 and len(teams.cards) == 2,
                         what="resolution sent")
        assert pagerduty.events[1] == {"routing_key": pagerduty.routing_key,
                                       "event_action": "resolve", "dedup_key": inc}
        assert "Resolved: " in json.dumps(teams.cards[1])
        await container.delivery.wait_idle(10)
        assert len(pagerduty.events) == 2 and len(teams.cards) == 2  # each once
        quiet_events = (await c.get(f"/incidents/{quiet['incidents'][0]}")).json()["events"]
        assert not [e for e in quiet_events if e["type"].startswith("Notification")]
        everything = json.dumps((await c.get("/audit", params={"limit": 1000})).json())
        assert pagerduty.routing_key not in everything and "SecretSig0123" not in everything


async def test_paging_retries_server_errors_and_gives_up_on_an_invalid_event(
        tmp_path: Path, pagerduty: PagerDuty) -> None:
    pagerduty.fail_next(500, 2)
    async with agent(tmp_path, targets=UNMANAGED, pagerduty_routing_key=pagerduty.routing_key,
                     pagerduty_events_url=pagerduty.url) as (c, _):
        await c.post(URL, json=firing("DbDown", "critical"))
        await eventually(lambda: pagerduty.events, what="the page")
        tries = await audit(c, "NotificationAttempted")
        assert [t["data"]["status_code"] for t in tries] == [500, 500]
        assert [t["data"]["retry_in_s"] for t in tries] == [0.05, 0.1]  # backoff doubles
        (done,) = await audit(c, "NotificationDelivered")
        assert done["data"]["attempt"] == 3 and done["data"]["status_code"] == 202
    wrong = "W0RONGKEY0123456789abcdef0123456"
    (tmp_path / "b").mkdir()
    async with agent(tmp_path / "b", targets=UNMANAGED, pagerduty_routing_key=wrong,
                     pagerduty_events_url=pagerduty.url) as (c, _):
        await c.post(URL, json=firing("DbDown", "critical"))
        (failed,) = await eventually(lambda: audit(c, "NotificationFailed"), what="failure")
        assert failed["data"]["status_code"] == 400 and failed["data"]["attempt"] == 1
        assert "routing_key" in failed["data"]["error"] and wrong not in json.dumps(failed)


async def test_approvals_without_callbacks_link_to_the_dashboard(
        tmp_path: Path, teams: TeamsWorkflow) -> None:
    slack = SlackApi()
    with slack.running():
        async with agent(tmp_path, mode="approval", teams_webhook_url=teams.webhook_url,
                         slack_webhook_url=slack.webhook_url) as (c, _):
            inc = (await c.post(URL, json=notification())).json()["incidents"][0]
            await eventually(lambda: len(slack.webhook_posts) == 2 and len(teams.cards) == 2,
                             what="incident and approval posts")
            incident_post, approval_post = slack.webhook_posts
            assert "TargetDown" in json.dumps(incident_post["blocks"])
            assert '"value"' not in json.dumps(incident_post)  # no buttons to click back
            assert "https://sre.example.test/status#approvals" in approval_post["text"]
            approve_links = [a for a in teams.cards[1]["actions"]
                             if a["title"] == "Approve on the dashboard"]
            assert approve_links[0]["url"] == "https://sre.example.test/status#approvals"
            events = (await c.get(f"/incidents/{inc}")).json()["events"]
            delivered = [e["data"]["key"] for e in events
                         if e["type"] == "NotificationDelivered"]
            assert delivered.count("incident") == 2  # Slack and Teams
            assert len([k for k in delivered if k.startswith("approval:")]) == 2
            everything = json.dumps((await c.get("/audit", params={"limit": 1000})).json())
            assert "WebhookSecretPart" not in everything and "SecretSig0123" not in everything
