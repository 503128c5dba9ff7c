"""Dashboard action rows: each kind shows the outcome that means something for it."""

from __future__ import annotations

from typing import Any

from sre_agent.web.action_view import action_row


def row(kind: str, status: str, result: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": "a1", "incident_id": "i1", "kind": kind, "target": None, "alertname": "X",
            "reason": "r", "status": status, "proposal": {}, "result": result,
            "decision_reason": None, "decided_by": None, "updated_at": "2026-12-02T00:00:00Z"}


def test_notify_and_escalate_show_their_delivery_never_checking() -> None:
    for kind in ("notify", "escalate", "silence_alert"):
        assert action_row(row(kind, "succeeded", {"ok": True})).verification == (
            "delivered: nothing to verify")
        assert action_row(row(kind, "failed", {"ok": False})).verification == "not delivered"
        assert action_row(row(kind, "blocked")).verification == "—"


def test_container_actions_show_their_verification() -> None:
    assert action_row(row("restart_container", "succeeded", {"ok": True})).verification == (
        "checking…")
    passed = {"ok": True, "verification": {"ok": True, "status": "passed"}}
    assert action_row(row("restart_container", "verified", passed)).verification == "passed"
    failed = {"ok": True, "verification": {"ok": False, "status": "failed", "error": "crash"}}
    assert action_row(row("start_container", "verification_failed", failed)
                      ).verification == "failed: crash"
