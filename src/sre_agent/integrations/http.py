"""What the chat and paging adapters share: one time-bounded request whose every outcome is a
``Sent`` (5xx, 429 and no answer are retryable; ``Retry-After`` read), with secrets scrubbed
from every error text."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx

from sre_agent.domain.events import utc_now
from sre_agent.domain.notifications import Delivered, Message, Sent
from sre_agent.shared.redact import redact

MAX_ERROR = 300


class Scrubber:
    """Removes the given secrets (tokens, webhook URLs and their paths) from text, then
    ``redact``s the rest."""

    def __init__(self, secrets: Sequence[str | None]) -> None:
        parts: set[str] = set()
        for secret in secrets:
            if not secret:
                continue
            parts.add(secret)
            path = urlsplit(secret).path
            if len(path) > 1 and "://" in secret:
                parts.add(path)
                parts.add(secret.split("?")[0])
        self.parts = sorted(parts, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for part in self.parts:
            text = text.replace(part, "[REDACTED]")
        return redact(text)[:MAX_ERROR]


def retry_after(headers: Mapping[str, str]) -> float | None:
    """``Retry-After`` in seconds (a number or an HTTP date), None when absent or unreadable."""
    value = headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    now = utc_now()
    return max(0.0, (when - now).total_seconds()) if when.tzinfo else None


class Client:
    """One pooled ``httpx.AsyncClient`` per destination, made with it at start-up: building a
    client (its TLS context) costs tens of milliseconds of CPU, which must not land on the
    event loop the pipeline shares, once per request or in the middle of an incident."""

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = httpx.AsyncClient(timeout=timeout_s)

    def get(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=self.timeout_s)
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def request(client: Client, method: str, url: str, *, scrub: Scrubber, peer: str,
                  json_body: Any = None, headers: Mapping[str, str] | None = None,
                  params: Mapping[str, str] | None = None,
                  ) -> tuple[httpx.Response | None, Sent | None]:
    """Send one request. Returns (response, None) when an HTTP answer below 400 came back,
    else (response or None, the failed ``Sent``)."""
    timeout_s = client.timeout_s
    try:
        response = await asyncio.wait_for(
            client.get().request(method, url, json=json_body, headers=dict(headers or {}),
                                 params=dict(params) if params else None),
            timeout_s + 1)
    except (TimeoutError, httpx.TimeoutException):
        return None, Sent(ok=False, error=f"{peer} timed out after {timeout_s:g}s",
                          retryable=True)
    except httpx.HTTPError as exc:
        return None, Sent(ok=False, error=scrub(f"{peer} unreachable: {type(exc).__name__}: "
                                                f"{exc}"), retryable=True)
    except Exception as exc:  # never raise
        return None, Sent(ok=False, error=scrub(f"{peer}: {type(exc).__name__}: {exc}"))
    code = response.status_code
    if code < 400:
        return response, None
    retryable = code == 429 or code >= 500
    text = " ".join(response.text.split())[:200]
    return response, Sent(ok=False, status_code=code, retryable=retryable,
                          retry_after_s=retry_after(response.headers) if retryable else None,
                          error=scrub(f"{peer} answered {code}" + (f": {text}" if text else "")))


class WebhookPoster:
    """A destination that POSTs each message as JSON to one secret URL (a Slack incoming
    webhook, a Teams workflow): subclasses say what to post (``messages``) and name the peer."""

    peer = "webhook"

    def __init__(self, url: str, timeout_s: float = 10.0) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self.client = Client(timeout_s)
        self.scrub = Scrubber([url])

    async def close(self) -> None:
        await self.client.close()

    async def send(self, message: Message, have: Delivered | None) -> Sent:
        response, failed = await request(self.client, "POST", self.url,
                                         scrub=self.scrub, peer=self.peer,
                                         json_body=message.body)
        if failed is not None or response is None:
            return failed or Sent(ok=False, error="no answer")
        return Sent(ok=True, status_code=response.status_code)
