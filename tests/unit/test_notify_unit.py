"""The notification body: text shape, redaction and bounds (no I/O)."""

from __future__ import annotations

from sre_agent.actions.notify import (
    MAX_LABELS,
    MAX_REASON_CHARS,
    MAX_SUMMARY_CHARS,
    WebhookNotifier,
    notification_body,
)
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.results import ActionRequest


def request(**overrides: object) -> ActionRequest:
    values: dict[str, object] = {"action_id": "a", "idempotency_key": "k", "incident_id": "inc-1",
                                 "kind": ActionKind.ESCALATE, "summary": "disk full",
                                 "reason": "verification failed"}
    values.update(overrides)
    return ActionRequest.model_validate(values)


def test_text_is_slack_compatible() -> None:
    body = notification_body(request())
    assert body["text"] == "[SRE Agent] ESCALATE inc-1: disk full — verification failed"
    assert body["kind"] == "escalate" and body["labels"] == {}


def test_whitespace_and_newlines_are_collapsed() -> None:
    body = notification_body(request(summary="line one\n\nline   two", reason="\t"))
    assert body["text"] == "[SRE Agent] ESCALATE inc-1: line one line two"
    assert body["reason"] == ""


def test_lengths_are_bounded() -> None:
    labels = {f"l{i}": "v" * 1000 for i in range(100)}
    body = notification_body(request(summary="s" * 5000, reason="r" * 5000, labels=labels))
    assert len(body["summary"]) == MAX_SUMMARY_CHARS
    assert len(body["reason"]) == MAX_REASON_CHARS
    assert len(body["labels"]) == MAX_LABELS
    assert all(len(v) <= 200 for v in body["labels"].values())


def test_secrets_are_redacted() -> None:
    body = notification_body(request(summary="password=hunter2 leaked",
                                     reason="token: eyJhbGciOi.eyJzdWIiOi.sig",
                                     labels={"url": "https://u:pw123456@host/x"}))
    text = str(body)
    assert "hunter2" not in text and "eyJzdWIiOi" not in text and "pw123456" not in text
    assert "[REDACTED]" in body["text"]


def test_destination_hides_path_and_credentials() -> None:
    notifier = WebhookNotifier("https://user:pass@hooks.example.com:8443/services/T/B/secret?x=1")
    assert notifier.destination == "https://hooks.example.com:8443"
    assert WebhookNotifier(None).destination is None
