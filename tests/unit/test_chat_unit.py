"""Chat and paging, the pure parts and the delivery worker on the in-memory store: routes,
Slack's signature, the incident card, milestones, formatting, retries and backoff."""

from __future__ import annotations

import time
from collections.abc import Mapping

import pytest

from sre_agent.config import Settings
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.notifications import (
    Delivered,
    IncidentCard,
    Message,
    Sent,
    chat_links,
    digest_of,
    incident_card,
    milestones,
)
from sre_agent.domain.routing import Destination, Routes, RoutesError, parse_routes
from sre_agent.integrations.http import Scrubber, retry_after
from sre_agent.integrations.pagerduty import pd_severity
from sre_agent.integrations.slack import escape, incident_blocks
from sre_agent.integrations.slack_signature import BadSignature, sign, verify
from sre_agent.pipeline.delivery import DeliveryWorker
from sre_agent.shared.redact import redact
from tests.support.memory_store import InMemoryEventStore
from tests.support.payloads import notification

S, T, P = Destination.SLACK, Destination.TEAMS, Destination.PAGERDUTY


# --- routes -------------------------------------------------------------------------------------
def test_the_first_matching_route_decides() -> None:
    routes = parse_routes("severity=critical, env!=dev -> slack,pagerduty; "
                          "team=~db|cache -> teams; * -> slack")
    assert routes.destinations_for({"severity": "critical", "env": "prod"}) == {S, P}
    assert routes.destinations_for({"severity": "critical", "env": "dev", "team": "db"}) == {T}
    assert routes.destinations_for({"severity": "warning", "team": "dbx"}) == {S}
    assert parse_routes("team!~db.* -> teams").destinations_for({"team": "web"}) == {T}
    assert parse_routes("team!~db.* -> teams").destinations_for({"team": "db1"}) == set()
    assert parse_routes("severity=info -> none; * -> slack").destinations_for(
        {"severity": "info"}) == set()
    assert Routes.everything([S, T]).destinations_for({}) == {S, T}


@pytest.mark.parametrize("text, problem", [
    ("severity=critical", "expected 'MATCHERS -> DESTINATIONS'"),
    ("* -> email", "unknown destination 'email'"),
    ("-> slack", "no matcher"),
    ("* ->", "no destination"),
    ("sev~x -> slack", "is not name=value"),
    ("team=~( -> slack", "bad regex"),
])
def test_a_bad_route_is_refused_naming_the_problem(text: str, problem: str) -> None:
    with pytest.raises(RoutesError, match=problem.replace("(", r"\(")):
        parse_routes(text)


def test_routes_must_name_configured_destinations() -> None:
    with pytest.raises(ValueError, match="pagerduty, which is not configured"):
        Settings(_env_file=None, routes="* -> pagerduty")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="SRE_AGENT_ROUTES: route"):
        Settings(_env_file=None, routes="nonsense")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="needs SRE_AGENT_SLACK_CHANNEL"):
        Settings(_env_file=None, slack_bot_token="xoxb-1-2-3")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="needs SRE_AGENT_SLACK_BOT_TOKEN"):
        Settings(_env_file=None, slack_signing_secret="a" * 32)  # type: ignore[call-arg]
    s = Settings(_env_file=None, slack_approvers="U1, U2,",  # type: ignore[call-arg]
                 teams_webhook_url="https://x.example/wf", slack_bot_token="xoxb-1-2-3",
                 slack_channel="C1")
    assert s.slack_approvers == ["U1", "U2"] and s.configured_destinations == {S, T}
    assert "xoxb" not in repr(s) and "x.example" not in repr(s)


# --- Slack's signature --------------------------------------------------------------------------
def test_slack_signature_matches_slacks_documented_example() -> None:
    # The worked example in Slack's "Verifying requests from Slack" documentation.
    secret = "8f742231b10e8888abcd99yyyzzz85a5"
    ts = "1531420618"
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&"
            b"channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&"
            b"command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2F"
            b"commands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id="
            b"398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert sign(secret, ts, body) == expected
    verify(secret, ts, expected, body, now=1531420618 + 10)


def test_forged_stale_and_missing_signatures_are_refused() -> None:
    secret, body, now = "s" * 32, b"payload=%7B%7D", time.time()
    ts = str(int(now))
    good = sign(secret, ts, body)
    with pytest.raises(BadSignature, match="does not match"):
        verify(secret, ts, sign("other" * 7, ts, body), body, now)
    with pytest.raises(BadSignature, match="does not match"):
        verify(secret, ts, good, body + b"&x=1", now)
    old = str(int(now) - 301)
    with pytest.raises(BadSignature, match="5 minutes"):
        verify(secret, old, sign(secret, old, body), body, now)
    with pytest.raises(BadSignature, match="missing"):
        verify(secret, None, good, body, now)
    with pytest.raises(BadSignature, match="not a number"):
        verify(secret, "soon", good, body, now)


# --- the card and the messages ------------------------------------------------------------------
async def _incident(store: InMemoryEventStore, **labels: str) -> str:
    note = notification()
    note["commonLabels"].update(labels)
    result = await store.ingest(WebhookNotification.model_validate(note))
    return result.touched[0]


async def _card(store: InMemoryEventStore, iid: str) -> IncidentCard:
    incident = await store.get_incident(iid)
    assert incident is not None
    return incident_card(incident, await store.list_events(incident_id=iid, limit=10_000),
                         "https://sre.test/")


async def _append(store: InMemoryEventStore, iid: str, *payloads: ev.EventPayload,
                  actor: str = Actor.AGENT) -> None:
    await store.append([NewEvent.of(p, actor, iid) for p in payloads])


async def test_the_card_follows_the_action_lifecycle() -> None:
    store = InMemoryEventStore()
    iid = await _incident(store)
    card = await _card(store, iid)
    assert not card.diagnosed and milestones(card, []) == []
    await _append(store, iid, ev.EvidenceCollected(evidence=[
        {"source": "docker", "name": "web", "status": "ok",
         "data": {"state": "exited", "exit_code": 137}},
        {"source": "prometheus", "name": "up", "status": "error", "error": "timeout"}]),
        ev.DiagnosisProduced(engine="rules", summary="web is down", confidence=0.9,
                             category="availability"),
        ev.ActionProposed(action_id="a1", kind="restart_container", target="web",
                          reason="exited"),
        ev.ActionAwaitingApproval(action_id="a1", reason="approval mode", expires_ts=5.0))
    card = await _card(store, iid)
    assert card.evidence == ["docker web: state=exited, exit_code=137",
                             "prometheus up: timeout"]
    assert [a.id for a in card.pending] == ["a1"]
    assert card.incident_url == f"https://sre.test/incidents/{iid}"
    assert milestones(card, []) == ["incident", "approval:a1"]
    await _append(store, iid, ev.ActionApproved(action_id="a1"),
                  actor=Actor.slack_user("U1"))
    await _append(store, iid, ev.ActionStarted(action_id="a1"),
                  ev.ActionSucceeded(action_id="a1", result=ev.ResultData(ok=True)),
                  ev.VerificationPassed(action_id="a1", result=ev.ResultData(ok=True)))
    (line,) = (await _card(store, iid)).actions
    assert line.status_text() == "verified: the target recovered (approved by slack:U1)"
    await _append(store, iid, ev.IncidentResolved(reason="all resolved"))
    card = await _card(store, iid)
    assert card.resolved and card.status == "resolved"
    assert milestones(card, ["incident", "approval:a1"]) == ["resolved"]
    assert milestones(card, []) == []  # never posted: no resolution post either


async def test_delivery_events_do_not_move_the_incident_or_wake_the_pipeline() -> None:
    store = InMemoryEventStore()
    iid = await _incident(store)
    before = await store.get_incident(iid)
    assert before is not None
    await store.mark_processed(iid, int(before["last_seq"]))
    await _append(store, iid, ev.NotificationDelivered(
        destination="slack", key="incident", op="post", digest="d1", channel="C1", ts="1.2",
        link="https://example.slack.com/archives/C1/p12"), actor=Actor.SYSTEM)
    await _append(store, iid, ev.NotificationDelivered(
        destination="slack", key="incident", op="update", digest="d2"), actor=Actor.SYSTEM)
    await _append(store, iid, ev.NotificationDelivered(
        destination="teams", key="x", link="javascript:alert(1)"), actor=Actor.SYSTEM)
    after = await store.get_incident(iid)
    assert after is not None and after["last_seq"] == before["last_seq"]
    assert await store.pending_incidents() == []
    events = await store.list_events(incident_id=iid, limit=100)
    assert chat_links(events) == {"slack": "https://example.slack.com/archives/C1/p12"}


def test_alert_text_is_escaped_and_redacted_for_slack() -> None:
    assert escape("<!channel> a&b <https://evil|click> password=hunter2") == (
        "&lt;!channel&gt; a&amp;b &lt;https://evil|click&gt; password=[REDACTED]")
    card = IncidentCard(incident_id="inc-1", title="<!here> down", severity="critical",
                        status="open", labels={}, incident_url="u", approvals_url="a",
                        upto_seq=1, summary="<@U0BOSS> look", diagnosed=True)
    text = str(incident_blocks(card, interactive=True))
    assert "&lt;@U0BOSS&gt;" in text and "<@U0BOSS>" not in text
    assert redact("token xoxb-123456789-abcdefghij") == "token [REDACTED]"


def test_pagerduty_severity_and_retry_after_and_scrubbing() -> None:
    assert [pd_severity(s) for s in ("critical", "P1", "error", "warning", "info", "none",
                                     "")] == ["critical", "critical", "error", "warning",
                                              "info", "info", "info"]
    assert retry_after({"retry-after": "7"}) == 7.0
    assert retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) == 0.0
    assert retry_after({"retry-after": "soon"}) is None and retry_after({}) is None
    scrub = Scrubber(["https://hooks.example/services/T0/B0/SECRETPART", "R0UTINGKEY"])
    assert scrub("POST https://hooks.example/services/T0/B0/SECRETPART failed; key "
                 "R0UTINGKEY") == "POST [REDACTED] failed; key [REDACTED]"
    assert "SECRETPART" not in scrub("GET /services/T0/B0/SECRETPART 404")


# --- the worker ---------------------------------------------------------------------------------
class ScriptedDestination:
    """A ChatDestination fake answering from a script of Sent results."""

    name = Destination.SLACK

    def __init__(self, answers: list[Sent]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, str]] = []

    def messages(self, card: IncidentCard, have: Mapping[str, Delivered]) -> list[Message]:
        if not card.diagnosed:
            return []
        body = {"summary": card.summary, "pending": [a.id for a in card.pending]}
        return [Message("incident", "update" if "incident" in have else "post", body,
                        digest_of(body))]

    async def close(self) -> None:
        pass

    async def send(self, message: Message, have: Delivered | None) -> Sent:
        self.sent.append((message.key, message.op))
        return self.answers.pop(0) if self.answers else Sent(ok=True, status_code=200)


async def test_the_worker_retries_with_backoff_and_retry_after_then_sends_only_changes() -> None:
    store = InMemoryEventStore()
    iid = await _incident(store)
    await _append(store, iid, ev.DiagnosisProduced(summary="down", engine="rules"))
    dest = ScriptedDestination([
        Sent(ok=False, status_code=429, retryable=True, retry_after_s=900, error="429"),
        Sent(ok=False, status_code=502, retryable=True, error="502"),
        Sent(ok=False, retryable=True, error="timed out"),
        Sent(ok=True, status_code=200, channel="C1", ts="1.1")])
    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    worker = DeliveryWorker(store, [dest], Routes.everything([S]), "https://sre.test",
                            max_attempts=5, backoff_s=1, max_backoff_s=60,
                            max_retry_after_s=300, sleep=sleep)
    assert await worker.sync(iid) == 1
    assert slept == [300, 2, 4]  # Retry-After (capped), then doubling backoff
    types = [e.type for e in await store.list_events(incident_id=iid, limit=100)]
    assert types.count(EventType.NOTIFICATION_ATTEMPTED) == 3
    assert types.count(EventType.NOTIFICATION_DELIVERED) == 1
    assert await worker.sync(iid) == 0  # nothing changed: nothing sent
    await _append(store, iid, ev.ActionProposed(action_id="a1", kind="restart_container"),
                  ev.ActionAwaitingApproval(action_id="a1"))
    assert await worker.sync(iid) == 1 and dest.sent[-1] == ("incident", "update")


async def test_a_final_failure_is_recorded_once_and_waits_for_the_next_change() -> None:
    store = InMemoryEventStore()
    iid = await _incident(store, team="db")
    await _append(store, iid, ev.DiagnosisProduced(summary="down"))
    dest = ScriptedDestination([Sent(ok=False, status_code=200, error="channel_not_found")])
    worker = DeliveryWorker(store, [dest], Routes.everything([S]), "u")
    assert await worker.sync(iid) == 0 and len(dest.sent) == 1
    (failed,) = await store.list_events(incident_id=iid,
                                        types=[EventType.NOTIFICATION_FAILED])
    assert isinstance(failed.payload, ev.NotificationFailed)
    assert failed.payload.error == "channel_not_found" and failed.payload.attempt == 1
    nowhere = DeliveryWorker(store, [dest], parse_routes("team=web -> slack"), "u")
    assert await nowhere.sync(iid) == 0 and len(dest.sent) == 1  # routed elsewhere


async def test_the_worker_starts_at_the_head_and_syncs_open_incidents_only() -> None:
    store = InMemoryEventStore()
    iid = await _incident(store)
    await _append(store, iid, ev.DiagnosisProduced(summary="down"))
    dest = ScriptedDestination([])
    worker = DeliveryWorker(store, [dest], Routes.everything([S]), "u", poll_s=0.05)
    await worker.start()
    try:
        await worker.wait_idle(5)
    finally:
        await worker.stop()
    assert dest.sent == [("incident", "post")]
    head = await store.last_event()
    assert head is not None and worker.cursor == head.seq
    again = DeliveryWorker(store, [dest], Routes.everything([S]), "u", poll_s=0.05)
    await again.start()  # a restart: the open incident is synced, and nothing is sent twice
    try:
        await again.wait_idle(5)
    finally:
        await again.stop()
    assert dest.sent == [("incident", "post")]
