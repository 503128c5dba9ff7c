"""Loopback HTTP servers speaking the documented protocols of Slack, Microsoft Teams Workflows
and PagerDuty Events v2, for tests (none of them is reachable from here).

- ``SlackApi``: the Web API methods the agent calls (``chat.postMessage``, ``chat.update``,
  ``chat.getPermalink``, ``chat.postEphemeral``): JSON bodies, ``Authorization: Bearer`` checked
  (``{"ok": false, "error": "invalid_auth"}`` otherwise, as Slack answers, with HTTP 200),
  ``channel_not_found`` for an unknown channel, ``message_not_found`` for an update of a ts it
  never issued, 429 with ``Retry-After`` when told to; it keeps the messages as Slack would
  (channel, ts, text, blocks), and an incoming-webhook path answering ``ok`` as text.
- ``TeamsWorkflow``: a Workflows webhook: POST with an Adaptive Card attachment -> 202; a body
  without one -> 400.
- ``PagerDuty``: ``POST /v2/enqueue``: validates routing_key, event_action, dedup_key and the
  payload's summary/source/severity like the real API; 202 ``{"status": "success", ...}``;
  400 ``{"status": "invalid event", "errors": [...]}``; 429 / 5xx when told to.

Each keeps every request it got (``requests``) and can be told to fail the next N requests
(``fail_next(status, n, retry_after=...)``).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Failure:
    status: int
    count: int
    retry_after: str | None = None


class ProtocolServer:
    """Base: a ThreadingHTTPServer on a free loopback port, requests recorded."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.failures: list[Failure] = []
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.url = ""

    def fail_next(self, status: int, count: int = 1, retry_after: str | None = None) -> None:
        with self.lock:
            self.failures.append(Failure(status, count, retry_after))

    def _take_failure(self) -> Failure | None:
        with self.lock:
            if not self.failures:
                return None
            f = self.failures[0]
            f.count -= 1
            if f.count <= 0:
                self.failures.pop(0)
            return f

    def handle(self, req: Recorded) -> tuple[int, dict[str, str], bytes]:
        raise NotImplementedError

    def paths(self, prefix: str = "") -> list[str]:
        return [r.path for r in self.requests if r.path.startswith(prefix)]

    @contextmanager
    def running(self) -> Iterator[ProtocolServer]:
        state = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST(method="GET")

            def do_POST(self, method: str = "POST") -> None:
                length = int(self.headers.get("Content-Length") or 0)
                req = Recorded(method, self.path, {k.lower(): v for k, v in self.headers.items()},
                               self.rfile.read(length))
                with state.lock:
                    state.requests.append(req)
                if state.delay_s:
                    time.sleep(state.delay_s)
                failure = state._take_failure()
                if failure is not None:
                    headers = {"Content-Type": "text/plain"}
                    if failure.retry_after is not None:
                        headers["Retry-After"] = failure.retry_after
                    status, reply_headers, body = failure.status, headers, b"try later"
                else:
                    status, reply_headers, body = state.handle(req)
                try:
                    self.send_response(status)
                    for k, v in reply_headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)


def _json(status: int, body: Any) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json"}, json.dumps(body).encode()


READ_METHODS = frozenset({"chat.getPermalink"})


@dataclass
class SlackMessage:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    updates: int = 0


@dataclass
class SlackApi(ProtocolServer):
    token: str = "xoxb-test-0000-secret"
    channels: set[str] = field(default_factory=lambda: {"C0ALERTS"})
    webhook_path: str = "/services/T000/B000/WebhookSecretPart"

    def __post_init__(self) -> None:
        super().__init__()
        self.messages: dict[str, SlackMessage] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.webhook_posts: list[dict[str, Any]] = []
        self._ts = 1_700_000_000

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self.webhook_path}"

    def handle(self, req: Recorded) -> tuple[int, dict[str, str], bytes]:
        if req.path == self.webhook_path:
            body = req.json
            if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
                return 400, {"Content-Type": "text/plain"}, b"invalid_payload"
            self.webhook_posts.append(body)
            return 200, {"Content-Type": "text/plain"}, b"ok"
        if not req.path.startswith("/api/"):
            return 404, {}, b"not found"
        path, _, query = req.path.partition("?")
        method = path.removeprefix("/api/")
        if req.headers.get("authorization") != f"Bearer {self.token}":
            return _json(200, {"ok": False, "error": "invalid_auth"})
        if method in READ_METHODS:
            # Read methods take form or query arguments; a JSON body is not read (Slack
            # accepts JSON for write methods only).
            body: Any = {k: v[0] for k, v in parse_qs(query).items()}
        else:
            if req.method != "POST" or not req.headers.get("content-type", "").startswith(
                    "application/json"):
                return _json(200, {"ok": False, "error": "invalid_arguments"})
            try:
                body = req.json
            except ValueError:
                return _json(200, {"ok": False, "error": "invalid_json"})
        channel = str(body.get("channel") or "")
        if channel not in self.channels:
            return _json(200, {"ok": False, "error": "channel_not_found"})
        if method == "chat.postMessage":
            if not (body.get("text") or body.get("blocks")):
                return _json(200, {"ok": False, "error": "no_text"})
            self._ts += 1
            ts = f"{self._ts}.000100"
            self.messages[ts] = SlackMessage(channel, ts, body.get("text", ""),
                                             body.get("blocks", []))
            return _json(200, {"ok": True, "channel": channel, "ts": ts,
                               "message": {"text": body.get("text", ""), "ts": ts}})
        if method == "chat.update":
            msg = self.messages.get(str(body.get("ts")))
            if msg is None or msg.channel != channel:
                return _json(200, {"ok": False, "error": "message_not_found"})
            msg.text, msg.blocks = body.get("text", msg.text), body.get("blocks", msg.blocks)
            msg.updates += 1
            return _json(200, {"ok": True, "channel": channel, "ts": msg.ts, "text": msg.text})
        if method == "chat.getPermalink":
            ts = str(body.get("message_ts"))
            if ts not in self.messages:
                return _json(200, {"ok": False, "error": "message_not_found"})
            return _json(200, {"ok": True, "channel": channel, "permalink":
                               f"https://example.slack.com/archives/{channel}/"
                               f"p{ts.replace('.', '')}"})
        if method == "chat.postEphemeral":
            self.ephemerals.append(body)
            return _json(200, {"ok": True, "message_ts": f"{self._ts}.000200"})
        return _json(200, {"ok": False, "error": "unknown_method"})

    def only_message(self) -> SlackMessage:
        (msg,) = self.messages.values()
        return msg


def block_text(blocks: list[dict[str, Any]]) -> str:
    """All the text of a Block Kit message, for assertions."""
    return json.dumps(blocks, ensure_ascii=False)


def buttons(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for b in blocks if b.get("type") == "actions" for e in b["elements"]
            if "value" in e]


class TeamsWorkflow(ProtocolServer):
    path = "/workflows/abc123/triggers/manual/paths/invoke?api-version=1&sig=SecretSig0123"

    def __init__(self) -> None:
        super().__init__()
        self.cards: list[dict[str, Any]] = []

    @property
    def webhook_url(self) -> str:
        return f"{self.url}{self.path}"

    def handle(self, req: Recorded) -> tuple[int, dict[str, str], bytes]:
        if req.path != self.path:
            return _json(401, {"error": {"code": "DirectApiAuthorizationRequired"}})
        body = req.json
        attachments = body.get("attachments") if isinstance(body, dict) else None
        if not attachments or attachments[0].get("contentType") != (
                "application/vnd.microsoft.card.adaptive"):
            return _json(400, {"error": {"code": "InvalidRequestContent"}})
        content = attachments[0]["content"]
        if content.get("type") != "AdaptiveCard" or "body" not in content:
            return _json(400, {"error": {"code": "InvalidRequestContent"}})
        self.cards.append(content)
        return 202, {}, b""


class PagerDuty(ProtocolServer):
    routing_key = "R0UT1NGKEY0123456789abcdef012345"

    def __init__(self) -> None:
        super().__init__()
        self.events: list[dict[str, Any]] = []

    def handle(self, req: Recorded) -> tuple[int, dict[str, str], bytes]:
        if req.path != "/v2/enqueue":
            return 404, {}, b""
        try:
            body = req.json
        except ValueError:
            return _json(400, {"status": "invalid event", "message": "Event object is invalid",
                               "errors": ["Malformed JSON"]})
        errors = []
        if body.get("routing_key") != self.routing_key:
            errors.append("'routing_key' is invalid")
        action = body.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is missing or invalid")
        if action == "trigger":
            payload = body.get("payload") or {}
            for name in ("summary", "source", "severity"):
                if not payload.get(name):
                    errors.append(f"'payload.{name}' is missing or blank")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid")
            if len(str(payload.get("summary", ""))) > 1024:
                errors.append("'payload.summary' is too long")
        elif not body.get("dedup_key"):
            errors.append("'dedup_key' is required to resolve")
        if errors:
            return _json(400, {"status": "invalid event", "message": "Event object is invalid",
                               "errors": errors})
        self.events.append(body)
        return _json(202, {"status": "success", "message": "Event processed",
                           "dedup_key": body.get("dedup_key")})
