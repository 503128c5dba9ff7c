"""Silence an incident's alerts in Alertmanager (``POST /api/v2/silences``).

The silence matches every (non-empty) label of the incident's alerts exactly, lasts
``params["duration_s"]`` seconds (clamped to [60, 86400]) and carries the action's idempotency key
in its comment, so that ``reconcile`` can find it again after a crash without creating a second.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from sre_agent.actions.http import PostFailed, ResultTimer, post_json
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.results import (
    ActionRequest,
    ActionResult,
    ReconcileResult,
    ReconcileStatus,
)
from sre_agent.shared.redact import redact

MIN_DURATION_S = 60
MAX_DURATION_S = 86400
MAX_REASON_CHARS = 300
MAX_BODY_EXCERPT = 300


def key_marker(idempotency_key: str) -> str:
    """The text put in a silence's comment that identifies the action which created it."""
    return f"[sre-agent-key:{idempotency_key}]"


def clamp_duration(value: object, default: int) -> int:
    """Seconds from ``value`` (int, float or numeric string), clamped; ``default`` otherwise."""
    seconds: float
    if isinstance(value, bool) or value is None:
        seconds = default
    elif isinstance(value, int | float):
        seconds = value
    else:
        try:
            seconds = float(str(value).strip())
        except ValueError:
            seconds = default
    if seconds != seconds:  # NaN
        seconds = default
    return int(min(max(seconds, MIN_DURATION_S), MAX_DURATION_S))


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class AlertmanagerSilenceBackend:
    """``silence_alert``. Implements ``ActionBackend``."""

    kinds: frozenset[ActionKind] = frozenset({ActionKind.SILENCE_ALERT})

    def __init__(self, url: str, timeout_s: float = 10, default_duration_s: int = 3600,
                 created_by: str = "sre-agent") -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.default_duration_s = clamp_duration(default_duration_s, 3600)
        self.created_by = created_by

    @property
    def silences_url(self) -> str:
        return f"{self.url}/api/v2/silences"

    def build_silence(self, request: ActionRequest, now: datetime | None = None) -> dict[str, Any]:
        """The silence body for ``request`` (raises ValueError when there is nothing to match)."""
        matchers = [{"name": name, "value": value, "isRegex": False, "isEqual": True}
                    for name, value in sorted(request.labels.items()) if name and value]
        if not matchers:
            raise ValueError("the incident has no alert labels to match; refusing to create a "
                             "silence without matchers")
        now = now or datetime.now(UTC)
        duration_s = clamp_duration(request.params.get("duration_s"), self.default_duration_s)
        reason = " ".join(redact(request.reason).split())[:MAX_REASON_CHARS] or "no reason given"
        comment = (f"sre-agent: incident {request.incident_id}: {reason} "
                   f"{key_marker(request.idempotency_key)}")
        return {"matchers": matchers, "startsAt": _rfc3339(now),
                "endsAt": _rfc3339(now + timedelta(seconds=duration_s)),
                "createdBy": self.created_by, "comment": comment}

    async def execute(self, request: ActionRequest) -> ActionResult:
        done = ResultTimer()
        if request.kind not in self.kinds:
            return done(False, {}, f"unsupported action kind {request.kind!s}")
        try:
            body = self.build_silence(request)
        except ValueError as exc:
            return done(False, {}, str(exc))
        detail: dict[str, Any] = {"matchers": body["matchers"], "starts_at": body["startsAt"],
                                  "ends_at": body["endsAt"]}
        try:
            response = await post_json(self.silences_url, body, self.timeout_s,
                                       peer="alertmanager",
                                       transport_error="alertmanager unreachable")
        except PostFailed as exc:
            return done(False, detail, str(exc))
        if not response.is_success:
            excerpt = redact(response.text.strip())[:MAX_BODY_EXCERPT]
            return done(False, {**detail, "status_code": response.status_code},
                        f"alertmanager answered {response.status_code}: {excerpt}")
        try:
            silence_id = str(response.json()["silenceID"])
        except (ValueError, KeyError, TypeError):
            return done(False, {**detail, "status_code": response.status_code},
                        "alertmanager answered without a silenceID: "
                        f"{redact(response.text.strip())[:MAX_BODY_EXCERPT]}")
        return done(True, {**detail, "silence_id": silence_id})

    async def _list(self) -> list[dict[str, Any]]:
        async with httpx.AsyncClient(timeout=self.timeout_s) as client:
            response = await client.get(self.silences_url)
            response.raise_for_status()
            data = response.json()
        if not isinstance(data, list):
            raise ValueError("unexpected silences answer")
        return [s for s in data if isinstance(s, dict)]

    async def reconcile(self, request: ActionRequest, started_at: datetime) -> ReconcileResult:
        """Is there a silence whose comment names this action's idempotency key? ``unknown``
        when Alertmanager cannot be asked. Never creates anything."""
        if request.kind not in self.kinds:
            return ReconcileResult(status=ReconcileStatus.UNKNOWN,
                                   reason=f"unsupported action kind {request.kind}")
        marker = key_marker(request.idempotency_key)
        try:
            silences = await asyncio.wait_for(self._list(), self.timeout_s + 1)
        except Exception as exc:
            return ReconcileResult(status=ReconcileStatus.UNKNOWN,
                                   reason=f"Alertmanager unreachable: {type(exc).__name__}")
        if any(marker in str(s.get("comment", "")) for s in silences):
            return ReconcileResult(status=ReconcileStatus.TOOK_EFFECT,
                                   reason="a silence carries the action's key")
        return ReconcileResult(status=ReconcileStatus.NO_EFFECT,
                               reason="no silence carries the action's key")
