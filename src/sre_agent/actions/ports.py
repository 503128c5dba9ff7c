"""The ActionBackend Protocol and the values crossing it.

Every implementation must guarantee:
- ``execute`` is time-bounded (it returns within its configured timeout plus a little) and never
  raises: every failure is an ``ActionResult`` with ``ok=False`` and an ``error`` text;
- it acts only on the target it is given (the gate has already decided that target is allowed);
- ``reconcile`` answers from the world, never by acting: did the action take effect after
  ``started_at``? ``None`` when it cannot tell.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from pydantic import BaseModel, Field

from sre_agent.domain.diagnosis import ActionKind


class ActionRequest(BaseModel):
    action_id: str
    idempotency_key: str
    incident_id: str
    kind: ActionKind
    target: str | None = None
    reason: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    # Alert labels of the incident (for silences' matchers and notification text).
    labels: dict[str, str] = Field(default_factory=dict)
    summary: str = ""


class ActionResult(BaseModel):
    ok: bool
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    duration_ms: float = 0.0


class VerificationResult(BaseModel):
    ok: bool
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class ActionBackend(Protocol):
    kinds: frozenset[ActionKind]

    async def execute(self, request: ActionRequest) -> ActionResult: ...

    async def reconcile(self, request: ActionRequest, started_at: datetime) -> bool | None: ...


class ContainerVerifier(Protocol):
    async def wait_recovered(self, name: str, deadline_s: float) -> VerificationResult:
        """Poll until the container runs (and is healthy, when it has a health check)."""
        ...
