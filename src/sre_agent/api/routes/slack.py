"""``POST /integrations/slack/interactions``: the Approve and Reject buttons of Slack messages.

Authenticated by Slack's signature, not by operator credentials (the middleware lets this
prefix through): the raw body is read (bounded), its ``v0`` signature and timestamp checked
(``integrations/slack_signature.py``) before anything is parsed. Then the clicking user must be
on ``SRE_AGENT_SLACK_APPROVERS``; an approval or rejection goes through the same
``CommandBus`` command as ``POST /actions/{id}/approve``, with ``operator:slack:USERID`` as the
actor. Every click is answered with 200 (Slack shows an error for anything else) and an
ephemeral reply only the clicker sees; the message itself is updated by the delivery worker.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import parse_qs

import structlog
from fastapi import APIRouter, BackgroundTasks, HTTPException, Request, Response

from sre_agent.api.deps import ServicesDep
from sre_agent.api.schemas import ErrorOut
from sre_agent.bootstrap import Services
from sre_agent.domain.actions import ActionStatus
from sre_agent.domain.events import Actor
from sre_agent.integrations.slack import APPROVE, REJECT, SlackBot, escape
from sre_agent.integrations.slack_signature import BadSignature, verify
from sre_agent.pipeline.commands import Approve, CommandRejected, NotFound, Reject

log = structlog.get_logger("sre_agent.slack")
router = APIRouter(prefix="/integrations/slack", tags=["integrations"])
MAX_BODY = 64 * 1024  # a block_actions payload is a few kB


class Refused(Exception):
    def __init__(self, status: int, detail: str) -> None:
        self.status, self.detail = status, detail


async def _body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise Refused(413, f"body exceeds {MAX_BODY} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, f"body exceeds {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _payload(body: bytes) -> dict[str, Any]:
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        raw = form["payload"][0]
        payload = json.loads(raw)
    except (UnicodeDecodeError, ValueError, KeyError, IndexError):
        raise Refused(400, "expected a form with a 'payload' field holding JSON") from None
    if not isinstance(payload, dict):
        raise Refused(400, "'payload' must be a JSON object")
    return payload


def _object(payload: dict[str, Any], key: str) -> dict[str, Any]:
    value = payload.get(key)
    return value if isinstance(value, dict) else {}


def _click(payload: dict[str, Any]) -> tuple[str, str, str, str] | None:
    """(user id, channel id, approve|reject, action id) of a button click, None for anything
    else (a link button, another interaction type)."""
    if payload.get("type") != "block_actions":
        return None
    user, channel, container = (_object(payload, k) for k in ("user", "channel", "container"))
    found = payload.get("actions")
    actions: list[Any] = found if isinstance(found, list) else []
    for action in actions:
        if isinstance(action, dict) and action.get("action_id") in (APPROVE, REJECT):
            user_id = str(user.get("id") or "")
            channel_id = str(channel.get("id") or container.get("channel_id") or "")
            value = str(action.get("value") or "")[:200]
            if not user_id or not value:
                raise Refused(400, "a button click without user id or action id")
            return user_id, channel_id, str(action["action_id"]), value
    return None


async def _reply(slack: SlackBot, channel: str, user: str, text: str) -> None:
    if not channel:
        return
    sent = await slack.ephemeral(channel, user, escape(text))  # ids and reasons are data
    if not sent.ok:
        log.warning("slack_reply_failed", user=user, error=sent.error)


async def _decide(services: Services, user: str, verb: str, action_id: str) -> str:
    """Carry the click out; the sentence to answer it with."""
    actor = Actor.slack_user(user)
    command = (Approve if verb == APPROVE else Reject)(action_id, actor, "from Slack")
    try:
        await services.commands.handle(command)
    except NotFound:
        return f"Action {action_id} does not exist; nothing changed."
    except CommandRejected as exc:
        row = await services.store.get_action(action_id)
        status, by = (row or {}).get("status"), (row or {}).get("decided_by")
        if by and status not in (ActionStatus.PENDING_APPROVAL, ActionStatus.EXPIRED):
            who = "you" if by == actor else str(by).removeprefix("operator:")
            return (f"Action {action_id} was already decided by {who} (now {status}); "
                    "nothing changed.")
        return f"Not done: {exc}. Nothing changed."
    if verb == APPROVE:
        return (f"Approved action {action_id}. The safety gate checks it again before it "
                "runs; this message updates as it runs and is verified.")
    return f"Rejected action {action_id}; it will not run."


@router.post("/interactions", status_code=200,
             responses={401: {"model": ErrorOut}, 413: {"model": ErrorOut}})
async def interactions(request: Request, services: ServicesDep,
                       background: BackgroundTasks) -> Response:
    """A click on a Slack message's Approve or Reject button (Slack's interactivity URL)."""
    settings, slack = services.settings, services.slack
    secret = settings.slack_signing_secret
    if secret is None or slack is None:
        # No secret, nothing can be verified: unauthenticated, like every other closed door.
        raise HTTPException(401, "Slack interactivity is not configured, so no request can be "
                                 "verified (SRE_AGENT_SLACK_SIGNING_SECRET, "
                                 "SRE_AGENT_SLACK_BOT_TOKEN)")
    try:
        body = await _body(request)
        try:
            verify(secret.get_secret_value(), request.headers.get("x-slack-request-timestamp"),
                   request.headers.get("x-slack-signature"), body, time.time())
        except BadSignature as exc:
            log.warning("slack_request_refused", reason=str(exc))
            raise Refused(401, f"not a valid Slack request: {exc}") from None
        click = _click(_payload(body))
    except Refused as exc:
        raise HTTPException(exc.status, exc.detail) from None
    if click is None:
        return Response(status_code=200)
    user, channel, verb, action_id = click
    if user not in settings.slack_approvers:
        log.warning("slack_click_not_allowed", user=user, action_id=action_id)
        background.add_task(_reply, slack, channel, user,
                            f"You are not allowed to approve or reject actions (Slack user "
                            f"{user} is not on the approvers list); nothing changed.")
        return Response(status_code=200)
    text = await _decide(services, user, verb, action_id)
    log.info("slack_click", user=user, action_id=action_id, verb=verb, answer=text[:200])
    services.delivery.nudge()
    background.add_task(_reply, slack, channel, user, text)
    return Response(status_code=200)
