"""Shape action rows, effectiveness stats and circuit breakers for the dashboard and the
incident page. Pure functions; alert text stays plain strings that the templates escape."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sre_agent.domain.diagnosis import CONTAINER_ACTIONS
from sre_agent.web.views import (
    ACTION_STATUS,
    BREAKER_STATE,
    Badge,
    badge_for,
    clip,
    fmt_duration,
    fmt_time,
)


@dataclass(frozen=True)
class ActionRow:
    id: str
    incident_id: str
    kind: str
    target: str
    alertname: str
    reason: str
    status: Badge
    pending: bool
    decision: str
    decided_by: str
    outcome: str
    verification: str
    updated_at: str
    updated: str
    confidence: str


def _outcome(result: Mapping[str, Any] | None) -> str:
    if not result or "ok" not in result:
        return "—"
    if result.get("ok"):
        return "ok (reconciled after restart)" if result.get("reconciled") else "ok"
    return clip(f"failed: {result.get('error') or 'unknown error'}", 200)


def _verification(result: Mapping[str, Any] | None, status: str, kind: str) -> str:
    if kind not in CONTAINER_ACTIONS:
        # Notify, escalate and silence tell people or Alertmanager: their delivery is the
        # outcome, and there is nothing to verify afterwards.
        return {"succeeded": "delivered: nothing to verify",
                "failed": "not delivered"}.get(status, "—")
    check = (result or {}).get("verification")
    if isinstance(check, Mapping) and "ok" in check:
        if check.get("status") == "inconclusive":
            return clip(f"inconclusive: {check.get('error') or '?'}", 200)
        return "passed" if check.get("ok") else clip(f"failed: {check.get('error') or '?'}", 200)
    return "checking…" if status == "succeeded" else "—"


def action_row(action: Mapping[str, Any]) -> ActionRow:
    status = str(action.get("status", ""))
    proposal = action.get("proposal") or {}
    confidence = proposal.get("confidence")
    return ActionRow(
        id=str(action["id"]), incident_id=str(action.get("incident_id", "")),
        kind=str(action.get("kind", "")).replace("_", " "),
        target=clip(action.get("target") or "—", 120), alertname=clip(action.get("alertname"), 120),
        reason=clip(action.get("reason")), status=badge_for(ACTION_STATUS, status),
        pending=status == "pending_approval", decision=clip(action.get("decision_reason") or "—"),
        decided_by=clip(action.get("decided_by") or "—", 80),
        outcome=_outcome(action.get("result")),
        verification=_verification(action.get("result"), status, str(action.get("kind", ""))),
        updated_at=str(action.get("updated_at", "")), updated=fmt_time(action.get("updated_at")),
        confidence=f"{float(confidence):.2f}" if isinstance(confidence, int | float) else "—")


@dataclass(frozen=True)
class EffectivenessRow:
    alertname: str
    kind: str
    attempts: int
    successes: int
    success_rate: str
    recoveries: int
    mean_recovery: str


def effectiveness_rows(stats: Iterable[Mapping[str, Any]]) -> list[EffectivenessRow]:
    rows = []
    for s in stats:
        attempts, successes = int(s.get("attempts", 0)), int(s.get("successes", 0))
        recoveries = int(s.get("recoveries", 0))
        total = float(s.get("recovery_seconds_total", 0.0))
        rows.append(EffectivenessRow(
            alertname=clip(s.get("alertname"), 120), kind=str(s.get("kind", "")).replace("_", " "),
            attempts=attempts, successes=successes,
            success_rate=f"{100 * successes / attempts:.0f}%" if attempts else "—",
            recoveries=recoveries,
            mean_recovery=fmt_duration(total / recoveries) if recoveries else "—"))
    return sorted(rows, key=lambda r: (r.alertname, r.kind))


@dataclass(frozen=True)
class BreakerRow:
    target: str
    state: Badge
    open: bool
    reason: str
    changed: str


def breaker_rows(breakers: Iterable[Mapping[str, Any]]) -> list[BreakerRow]:
    rows = [BreakerRow(target=str(b["target"]), state=badge_for(BREAKER_STATE, b.get("state")),
                       open=b.get("state") == "open", reason=clip(b.get("reason")),
                       changed=fmt_time(b.get("changed_at"))) for b in breakers]
    return sorted(rows, key=lambda r: (not r.open, r.target))
