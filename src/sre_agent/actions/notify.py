"""Outgoing notifications (``notify``, ``escalate``) as a JSON POST to one webhook URL.

The body carries a Slack-compatible ``text`` plus structured fields. Every text that leaves goes
through ``redact``; the URL itself (Slack webhook URLs are secrets) never appears in a result.
Without a configured URL the notification is recorded only, and that counts as success.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sre_agent.actions.http import PostFailed, ResultTimer, post_json
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.results import (
    ActionRequest,
    ActionResult,
    ReconcileResult,
    ReconcileStatus,
)
from sre_agent.shared.redact import redact

MAX_SUMMARY_CHARS = 500
MAX_REASON_CHARS = 500
MAX_LABELS = 30
MAX_LABEL_CHARS = 200
MAX_BODY_EXCERPT = 300
NOT_CONFIGURED = "no SRE_AGENT_NOTIFY_URL configured; recorded only"


def _clean(text: str, limit: int) -> str:
    return " ".join(redact(text).split())[:limit]


def notification_body(request: ActionRequest) -> dict[str, Any]:
    """The JSON posted for ``request`` (secrets redacted, lengths bounded)."""
    summary = _clean(request.summary, MAX_SUMMARY_CHARS)
    reason = _clean(request.reason, MAX_REASON_CHARS)
    labels = {str(k)[:MAX_LABEL_CHARS]: redact(str(v))[:MAX_LABEL_CHARS]
              for k, v in list(request.labels.items())[:MAX_LABELS]}
    kind = str(request.kind)
    text = f"[SRE Agent] {kind.upper()} {request.incident_id}: {summary or 'no summary'}"
    if reason:
        text += f" — {reason}"
    return {"text": text, "incident_id": request.incident_id, "kind": kind, "summary": summary,
            "reason": reason, "labels": labels}


class WebhookNotifier:
    """``notify`` and ``escalate``. Implements ``ActionBackend``."""

    kinds: frozenset[ActionKind] = frozenset({ActionKind.NOTIFY, ActionKind.ESCALATE})

    def __init__(self, url: str | None, timeout_s: float = 10,
                 chat: list[str] | None = None) -> None:
        self.url = url.strip() if url and url.strip() else None
        self.chat = list(chat or [])  # destinations the delivery worker posts the incident to
        self.timeout_s = timeout_s
        if self.url is not None and urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError("the notification URL must be http:// or https://")

    @property
    def destination(self) -> str | None:
        """Where notifications go, without path, query or credentials (safe to record)."""
        if self.url is None:
            return None
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}"

    def _scrub(self, text: str) -> str:
        if self.url:
            text = text.replace(self.url, self.destination or "")
            path = urlsplit(self.url).path
            if len(path) > 1:
                text = text.replace(path, "/…")
        return redact(text)[:MAX_BODY_EXCERPT]

    def _describe(self, exc: BaseException) -> str:
        return self._scrub(f"{type(exc).__name__}: {exc}")

    async def execute(self, request: ActionRequest) -> ActionResult:
        done = ResultTimer()
        if request.kind not in self.kinds:
            return done(False, {}, f"unsupported action kind {request.kind!s}")
        body = notification_body(request)
        if self.url is None:
            reason = (f"no SRE_AGENT_NOTIFY_URL; the incident goes to {', '.join(self.chat)} "
                      "through the delivery worker (Notification* events)"
                      if self.chat else NOT_CONFIGURED)
            return done(True, {"delivered": False, "reason": reason, "chat": self.chat,
                               "text": body["text"]})
        detail: dict[str, Any] = {"delivered": False, "destination": self.destination,
                                  "text": body["text"]}
        try:
            response = await post_json(self.url, body, self.timeout_s, peer="notification",
                                       transport_error="notification failed",
                                       describe=self._describe)
        except PostFailed as exc:
            return done(False, detail, str(exc))
        detail["status_code"] = response.status_code
        if not response.is_success:
            return done(False, detail, f"notification receiver answered {response.status_code}: "
                        + self._scrub(response.text.strip()))
        return done(True, {**detail, "delivered": True})

    async def reconcile(self, request: ActionRequest, started_at: datetime) -> ReconcileResult:
        """A webhook leaves no trace that can be read back: cannot tell."""
        return ReconcileResult(status=ReconcileStatus.UNKNOWN,
                               reason="a webhook delivery cannot be read back")
