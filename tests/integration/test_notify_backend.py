"""WebhookNotifier against a real local HTTP receiver (http.server in a thread)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from sre_agent.actions.notify import NOT_CONFIGURED, WebhookNotifier
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.results import ActionRequest, ReconcileStatus
from sre_agent.ports import ActionBackend
from tests.support.components import free_port

TOOK, NO_EFFECT, UNKNOWN = (ReconcileStatus.TOOK_EFFECT, ReconcileStatus.NO_EFFECT,
                            ReconcileStatus.UNKNOWN)

pytestmark = pytest.mark.integration

SECRET_PATH = "/services/T000/B000/SuperSecretHookPart"


@dataclass
class Receiver:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    status: int = 200
    delay_s: float = 0.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            state.requests.append({"path": self.path, "headers": dict(self.headers),
                                   "json": json.loads(body)})
            if state.delay_s:
                time.sleep(state.delay_s)
            reply = b"ok" if state.status < 400 else (
                f"boom at {SECRET_PATH}".encode() + b" x" * 500)
            try:
                self.send_response(state.status)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except OSError:
                pass  # the client gave up (timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}{SECRET_PATH}"
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def request(kind: ActionKind = ActionKind.ESCALATE, **overrides: Any) -> ActionRequest:
    values: dict[str, Any] = {
        "action_id": "act-1", "idempotency_key": "key-1", "incident_id": "inc-7", "kind": kind,
        "reason": "restart did not help; api_key=sk-live-123456",
        "summary": "web is down (Authorization: Bearer abc.def.ghi)",
        "labels": {"alertname": "TargetDown", "job": "web", "dsn": "postgres://u:hunter2@db/x"},
    }
    values.update(overrides)
    return ActionRequest(**values)


def test_notifier_satisfies_the_protocol() -> None:
    backend: ActionBackend = WebhookNotifier(None)
    assert backend.kinds == {ActionKind.NOTIFY, ActionKind.ESCALATE}


async def test_escalation_is_posted_as_json_with_text(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url, timeout_s=5)
    result = await notifier.execute(request())

    assert result.ok, result
    assert result.detail["delivered"] is True and result.detail["status_code"] == 200
    assert result.duration_ms > 0
    assert len(receiver.requests) == 1
    got = receiver.requests[0]
    assert got["path"] == SECRET_PATH
    assert got["headers"]["Content-Type"] == "application/json"
    body = got["json"]
    assert set(body) >= {"text", "incident_id", "kind", "summary", "reason", "labels"}
    assert body["incident_id"] == "inc-7" and body["kind"] == "escalate"
    assert body["text"].startswith("[SRE Agent] ESCALATE inc-7: web is down")
    assert "— restart did not help" in body["text"]
    assert body["labels"]["alertname"] == "TargetDown"
    # Secrets never leave: not in the text, the fields or the labels.
    raw = json.dumps(body)
    for secret in ("sk-live-123456", "abc.def.ghi", "hunter2"):
        assert secret not in raw
    # The webhook URL (a secret for Slack) is not recorded.
    assert SECRET_PATH not in json.dumps(result.model_dump())
    assert result.detail["destination"] == receiver.url.split("/services")[0]


async def test_notify_kind(receiver: Receiver) -> None:
    result = await WebhookNotifier(receiver.url).execute(
        request(ActionKind.NOTIFY, reason="", summary=""))
    assert result.ok, result
    body = receiver.requests[0]["json"]
    assert body["kind"] == "notify"
    assert body["text"] == "[SRE Agent] NOTIFY inc-7: no summary"


async def test_receiver_error_is_a_failure(receiver: Receiver) -> None:
    receiver.status = 500
    result = await WebhookNotifier(receiver.url).execute(request())
    assert not result.ok
    assert result.detail["status_code"] == 500 and result.detail["delivered"] is False
    assert result.error is not None
    assert result.error.startswith("notification receiver answered 500: boom at")
    assert SECRET_PATH not in result.error
    assert len(result.error) < 400
    assert len(receiver.requests) == 1


async def test_no_url_is_recorded_only() -> None:
    for url in (None, "", "  "):
        result = await WebhookNotifier(url).execute(request())
        assert result.ok
        assert result.detail["delivered"] is False
        assert result.detail["reason"] == NOT_CONFIGURED
        assert result.detail["text"].startswith("[SRE Agent] ESCALATE inc-7")


async def test_receiver_down_is_a_clean_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}/hook/secret-part"
    t0 = time.monotonic()
    result = await WebhookNotifier(url, timeout_s=2).execute(request())
    assert not result.ok
    assert result.error is not None and result.error.startswith("notification failed: ")
    assert "secret-part" not in result.error
    assert time.monotonic() - t0 < 3


async def test_slow_receiver_times_out(receiver: Receiver) -> None:
    receiver.delay_s = 3
    t0 = time.monotonic()
    result = await WebhookNotifier(receiver.url, timeout_s=1).execute(request())
    assert not result.ok
    assert result.error == "notification timed out after 1s"
    assert time.monotonic() - t0 < 2.5


async def test_unresponsive_socket_times_out() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}/hook"
        t0 = time.monotonic()
        result = await WebhookNotifier(url, timeout_s=1).execute(request())
        assert not result.ok and result.error == "notification timed out after 1s"
        assert time.monotonic() - t0 < 2.5


async def test_reconcile_cannot_tell(receiver: Receiver) -> None:
    notifier = WebhookNotifier(receiver.url)
    assert (await notifier.reconcile(request(), datetime.now(UTC))).status is UNKNOWN
    assert receiver.requests == []  # reconcile never sends


def test_non_http_url_is_refused() -> None:
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("file:///etc/passwd")
