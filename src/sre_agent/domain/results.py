"""The values crossing the action ports: requests, and results that carry a status.

A result is never a bare boolean: each says what happened (a StrEnum) and why (``error`` or
``reason``). ``ok`` is derived from the status, for the log and the API.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, computed_field

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


class ActionOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ActionResult(BaseModel):
    status: ActionOutcome
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    duration_ms: float = 0.0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return self.status == ActionOutcome.SUCCEEDED

    @classmethod
    def of(cls, ok: bool, detail: dict[str, Any] | None = None, error: str | None = None,
           duration_ms: float = 0.0) -> ActionResult:
        return cls(status=ActionOutcome.SUCCEEDED if ok else ActionOutcome.FAILED,
                   detail=detail or {}, error=error, duration_ms=duration_ms)


class ReconcileStatus(StrEnum):
    """What the world says about an action the agent started but never saw finish."""

    TOOK_EFFECT = "took_effect"
    NO_EFFECT = "no_effect"
    UNKNOWN = "unknown"


class ReconcileResult(BaseModel):
    status: ReconcileStatus
    reason: str = ""


class VerificationStatus(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    # The check could not tell (e.g. Prometheus unreachable): never counted as a pass.
    INCONCLUSIVE = "inconclusive"


class VerificationResult(BaseModel):
    status: VerificationStatus
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def ok(self) -> bool:
        return self.status == VerificationStatus.PASSED

    @classmethod
    def passed(cls, detail: dict[str, Any] | None = None) -> VerificationResult:
        return cls(status=VerificationStatus.PASSED, detail=detail or {})

    @classmethod
    def failed(cls, error: str, detail: dict[str, Any] | None = None) -> VerificationResult:
        return cls(status=VerificationStatus.FAILED, error=error, detail=detail or {})

    @classmethod
    def inconclusive(cls, error: str, detail: dict[str, Any] | None = None
                     ) -> VerificationResult:
        return cls(status=VerificationStatus.INCONCLUSIVE, error=error, detail=detail or {})
