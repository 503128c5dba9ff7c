"""Slack: Block Kit messages, the Web API (``chat.postMessage``, ``chat.update``,
``chat.getPermalink``, ``chat.postEphemeral``) with a bot token, or an incoming webhook.

With a bot token and a channel, each incident has one message, posted once it is diagnosed
(or an action waits for approval) and updated in place as its actions are decided, run and
verified, and when it resolves; a pending approval carries **Approve** and **Reject** buttons
whose clicks come back to ``POST /integrations/slack/interactions`` (``api/routes/slack.py``).
An incoming webhook cannot be updated or clicked: it gets one post per milestone
(``milestones``), with links to the dashboard. All alert text is escaped for mrkdwn (``<!here>``
in an alert mentions nobody) and redacted; the token and webhook URL never leave this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sre_agent.domain.notifications import (
    BAD,
    GOOD,
    ActionLine,
    Delivered,
    IncidentCard,
    Message,
    Sent,
    digest_of,
    milestones,
)
from sre_agent.domain.routing import Destination
from sre_agent.integrations.http import Client, Scrubber, WebhookPoster, request
from sre_agent.shared.redact import redact

APPROVE, REJECT, OPEN = "approve", "reject", "open_incident"
MAX_ACTIONS = 10
SEVERITY_ICON = {"critical": ":red_circle:", "error": ":large_orange_circle:",
                 "warning": ":large_yellow_circle:", "info": ":large_blue_circle:"}
# Web API errors worth another attempt (Slack's own trouble); any other error is final.
RETRYABLE_ERRORS = frozenset({"internal_error", "fatal_error", "service_unavailable",
                              "request_timeout", "ratelimited"})


def escape(text: str) -> str:
    """Alert text as mrkdwn data: redacted, and ``& < >`` escaped as Slack documents, so no
    ``<!channel>``, ``<@U…>`` or ``<url|label>`` in an alert becomes a mention or a link."""
    return redact(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(name: str) -> str:
    """An operator's name; a Slack user (``slack:U123``) as a mention."""
    if name.startswith("slack:"):
        return f"<@{escape(name.removeprefix('slack:'))}>"
    return escape(name)


def _text(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text[:2900]}


def fallback_text(card: IncidentCard) -> str:
    state = "RESOLVED" if card.resolved else card.severity.upper()
    return escape(f"[{state}] {card.title}: {card.summary or 'no diagnosis yet'}")[:3000]


def _button(text: str, action_id: str, *, value: str = "", url: str = "",
            style: str = "") -> dict[str, Any]:
    button: dict[str, Any] = {"type": "button", "action_id": action_id,
                              "text": {"type": "plain_text", "text": text}}
    if value:
        button["value"] = value
    if url:
        button["url"] = url
    if style:
        button["style"] = style
    return button


def _action_blocks(line: ActionLine, interactive: bool, approvals_url: str
                   ) -> list[dict[str, Any]]:
    icon = (":hourglass_flowing_sand:" if line.pending else ":white_check_mark:"
            if line.status in GOOD else ":x:" if line.status in BAD else ":gear:")
    blocks: list[dict[str, Any]] = [{"type": "section", "text": _text(
        f"{icon} *{escape(line.label)}*: {line.status_text(mention)}"
        + (f"\n_{escape(line.reason)}_" if line.reason else ""))}]
    if line.pending:
        if interactive:
            blocks.append({"type": "actions", "block_id": f"approval:{line.id}"[:255],
                           "elements": [
                               _button("Approve", APPROVE, value=line.id, style="primary"),
                               _button("Reject", REJECT, value=line.id, style="danger")]})
        else:
            blocks.append({"type": "actions", "elements": [
                _button("Approve on the dashboard", OPEN, url=approvals_url)]})
    return blocks


def incident_blocks(card: IncidentCard, *, interactive: bool) -> list[dict[str, Any]]:
    icon = ":white_check_mark:" if card.resolved else SEVERITY_ICON.get(card.severity,
                                                                         ":white_circle:")
    title = redact(card.title)
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": {"type": "plain_text", "text": title[:140] or "incident"}},
        {"type": "section", "fields": [
            _text(f"*Severity*\n{icon} {escape(card.severity)}"),
            _text(f"*Status*\n{escape(card.status)}"
                  + (" (escalated)" if card.escalated and card.status not in (
                      "escalated", "resolved") else ""))]}]
    if card.diagnosed:
        lines = [f"*Diagnosis*: {escape(card.summary or '—')}"]
        if card.cause:
            lines.append(f"*Probable cause*: {escape(card.cause)}")
        conf = f", confidence {card.confidence:.2f}" if card.confidence is not None else ""
        lines.append(f"_{escape(card.category)} · {escape(card.engine)}{conf}_")
        blocks.append({"type": "section", "text": _text("\n".join(lines))})
    if card.evidence:
        blocks.append({"type": "context", "elements": [
            _text(escape(line)) for line in card.evidence[:10]]})
    if card.actions:
        blocks.append({"type": "divider"})
        for line in card.actions[:MAX_ACTIONS]:
            blocks.extend(_action_blocks(line, interactive and not card.resolved,
                                         card.approvals_url))
    blocks.append({"type": "actions", "elements": [
        _button("Open incident", OPEN, url=card.incident_url)]})
    blocks.append({"type": "context", "elements": [_text(f"SRE Agent · {card.incident_id}")]})
    return blocks


def derived_link(channel: str, ts: str) -> str:
    """A message link from its channel and ts (Slack's archive URL shape)."""
    return f"https://slack.com/archives/{channel}/p{ts.replace('.', '')}"


class SlackBot:
    """A Slack app's bot token and one channel: one message per incident, updated in place.
    Implements ``ChatDestination``."""

    name = Destination.SLACK

    def __init__(self, token: str, channel: str, api_url: str = "https://slack.com/api",
                 timeout_s: float = 10.0, *, interactive: bool = True) -> None:
        self.token = token
        self.interactive = interactive  # buttons need the signing secret and approvers
        self.channel = channel
        self.api_url = api_url.rstrip("/")
        self.timeout_s = timeout_s
        self.client = Client(timeout_s)
        self.scrub = Scrubber([token])

    def messages(self, card: IncidentCard, have: Mapping[str, Delivered]) -> list[Message]:
        if not (card.diagnosed or card.pending or "incident" in have):
            return []
        body = {"text": fallback_text(card),
                "blocks": incident_blocks(card, interactive=self.interactive)}
        return [Message("incident", "update" if "incident" in have else "post", body,
                        digest_of(body))]

    async def call(self, method: str, body: dict[str, Any], *, read: bool = False
                   ) -> tuple[dict[str, Any], Sent | None]:
        """One Web API call; (the answer's JSON, None) when ``ok``, else the failed Sent.
        Write methods take a JSON body; a ``read`` method (``chat.getPermalink``) is a GET
        with query arguments, as Slack accepts JSON bodies for write methods only."""
        auth = {"Authorization": f"Bearer {self.token}"}
        if read:
            response, failed = await request(
                self.client, "GET", f"{self.api_url}/{method}", scrub=self.scrub,
                peer=f"Slack {method}", headers=auth, params=body)
        else:
            response, failed = await request(
                self.client, "POST", f"{self.api_url}/{method}", scrub=self.scrub,
                peer=f"Slack {method}", json_body=body,
                headers={**auth, "Content-Type": "application/json; charset=utf-8"})
        if failed is not None or response is None:
            return {}, failed or Sent(ok=False, error="no answer")
        try:
            answer = response.json()
        except ValueError:
            return {}, Sent(ok=False, status_code=response.status_code,
                            error=f"Slack {method} answered something that is not JSON")
        if not isinstance(answer, dict) or answer.get("ok") is not True:
            error = str(answer.get("error", "not ok")) if isinstance(answer, dict) else "not ok"
            return {}, Sent(ok=False, status_code=response.status_code,
                            error=self.scrub(f"Slack {method}: {error}"),
                            retryable=error in RETRYABLE_ERRORS)
        return answer, None

    async def close(self) -> None:
        await self.client.close()

    async def send(self, message: Message, have: Delivered | None) -> Sent:
        if message.op == "update" and have is not None and have.channel and have.ts:
            answer, failed = await self.call("chat.update", {
                "channel": have.channel, "ts": have.ts, **message.body})
            if failed is not None:
                return failed
            return Sent(ok=True, status_code=200, channel=have.channel, ts=have.ts,
                        link=have.link)
        answer, failed = await self.call("chat.postMessage",
                                         {"channel": self.channel, **message.body})
        if failed is not None:
            return failed
        channel, ts = str(answer.get("channel") or self.channel), str(answer.get("ts") or "")
        link, _ = await self.call("chat.getPermalink", {"channel": channel, "message_ts": ts},
                                  read=True)
        permalink = str(link.get("permalink") or "") or derived_link(channel, ts)
        return Sent(ok=True, status_code=200, channel=channel, ts=ts, link=permalink)

    async def ephemeral(self, channel: str, user: str, text: str) -> Sent:
        """A reply only ``user`` sees (the answer to a click)."""
        _, failed = await self.call("chat.postEphemeral",
                                    {"channel": channel, "user": user, "text": text})
        return failed or Sent(ok=True, status_code=200)


class SlackWebhook(WebhookPoster):
    """A Slack incoming webhook: notify-only, one post per milestone. ``ChatDestination``."""

    name = Destination.SLACK

    peer = "Slack webhook"

    def messages(self, card: IncidentCard, have: Mapping[str, Delivered]) -> list[Message]:
        out = []
        for key in milestones(card, have):
            if key == "incident":
                body = {"text": fallback_text(card),
                        "blocks": incident_blocks(card, interactive=False)}
            elif key == "resolved":
                body = {"text": escape(f"Resolved: {card.title}") + f" <{card.incident_url}|"
                        "open incident>"}
            else:
                line = next(a for a in card.actions if f"approval:{a.id}" == key)
                body = {"text": escape(f"Approval needed: {line.label} for {card.title}")
                        + f" <{card.approvals_url}|approve on the dashboard>"}
            out.append(Message(key, "post", body, digest_of(body)))
        return out
