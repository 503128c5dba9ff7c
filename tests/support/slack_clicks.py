"""Slack button clicks as Slack sends them: a form with a ``payload`` JSON field, signed with
the app's signing secret (``v0`` scheme), for tests of ``/integrations/slack/interactions``."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx

from sre_agent.integrations.slack_signature import sign

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
CHANNEL = "C0ALERTS"
PATH = "/integrations/slack/interactions"


def click_body(user: str, verb: str, action_id: str, channel: str = CHANNEL) -> bytes:
    payload = {
        "type": "block_actions", "user": {"id": user, "username": user.lower()},
        "api_app_id": "A0APP", "team": {"id": "T0TEAM"},
        "container": {"type": "message", "channel_id": channel, "message_ts": "1.2"},
        "channel": {"id": channel, "name": "alerts"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "actions": [{"type": "button", "action_id": verb, "block_id": f"approval:{action_id}",
                     "value": action_id, "action_ts": f"{time.time():.6f}"}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


def signed_headers(body: bytes, *, secret: str = SIGNING_SECRET,
                   timestamp: int | None = None) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    return {"Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sign(secret, ts, body)}


async def click(c: httpx.AsyncClient, user: str, verb: str, action_id: str, *,
                secret: str = SIGNING_SECRET, timestamp: int | None = None,
                body: bytes | None = None) -> httpx.Response:
    raw = body if body is not None else click_body(user, verb, action_id)
    return await c.post(PATH, content=raw,
                        headers=signed_headers(raw, secret=secret, timestamp=timestamp))


async def eventually(predicate: Callable[[], Any], timeout: float = 20.0,
                     what: str = "condition") -> Any:
    """Await until ``predicate()`` (sync or async) is truthy; its value, or fail."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.05)
