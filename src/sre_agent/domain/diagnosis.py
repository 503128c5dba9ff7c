"""Diagnosis: what the analysis stage produces, whichever engine produced it."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Category(StrEnum):
    AVAILABILITY = "availability"
    ERRORS = "errors"
    LATENCY = "latency"
    SATURATION = "saturation"
    CAPACITY = "capacity"
    CONFIGURATION = "configuration"
    SECURITY = "security"
    UNKNOWN = "unknown"


class Severity(StrEnum):
    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class ActionKind(StrEnum):
    """The closed set of actions the agent may ever propose."""

    RESTART_CONTAINER = "restart_container"
    START_CONTAINER = "start_container"
    SILENCE_ALERT = "silence_alert"
    NOTIFY = "notify"
    ESCALATE = "escalate"


# Actions that change a container: they need a resolved, in-scope target.
CONTAINER_ACTIONS = frozenset({ActionKind.RESTART_CONTAINER, ActionKind.START_CONTAINER})


class Engine(StrEnum):
    LLM = "llm"
    RULES = "rules"


class ProposedAction(BaseModel):
    kind: ActionKind
    target: str | None = Field(default=None, description="container name, for container actions")
    reason: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    needs_approval: bool = Field(
        default=False, description="an operator must approve it whatever the mode (the "
                                   "combined engine: an LLM action the runbooks did not propose)")


class Diagnosis(BaseModel):
    summary: str
    probable_cause: str = ""
    category: Category = Category.UNKNOWN
    severity: Severity = Severity.WARNING
    confidence: float = Field(default=0.5, ge=0.0, le=1.0)
    evidence: list[str] = Field(default_factory=list, description="evidence cited, as text")
    proposed_actions: list[ProposedAction] = Field(default_factory=list)
    issue_detected: bool = True
    requires_immediate_action: bool = False
    engine: Engine = Engine.RULES
    runbook: str | None = None
    match_reason: str | None = Field(
        default=None, description="why this runbook or classifier rule matched, in one line")
    model: str | None = None
    tokens: int = 0
    latency_ms: float = 0.0
    fallback_reason: str | None = None
    dropped_actions: list[dict[str, Any]] = Field(default_factory=list)
    # Which engine chose the proposed actions (rules, llm), and why: the combined engine's
    # record (analysis/combine.py). None: the one engine that answered chose them.
    action_engine: Engine | None = None
    action_reason: str = ""
    explanation_pending: bool = Field(
        default=False, description="proposed without waiting for the LLM, which could not "
                                   "change the actions; its explanation follows")
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list, description="the LLM's investigation: tool, args, error")


EXPLANATION_FIELDS = ("summary", "probable_cause", "evidence", "model", "latency_ms",
                      "dropped_actions", "tool_calls")


def with_explanation(diagnosis: dict[str, Any], explanation: dict[str, Any]) -> dict[str, Any]:
    """A recorded diagnosis (``DiagnosisProduced`` data) with its later ``DiagnosisExplained``
    folded in: the LLM's text replaces the rules' (the rules' summary stays among the evidence),
    tokens add up, the actions and everything the gate used stay as they were. An explanation
    the LLM did not give (``fallback_reason``) only records why."""
    out = dict(diagnosis)
    out["explanation_pending"] = False
    if explanation.get("fallback_reason") and not explanation.get("summary"):
        out["explanation_fallback_reason"] = explanation["fallback_reason"]
        return out
    for key in EXPLANATION_FIELDS:
        if key in explanation:
            out[key] = explanation[key]
    out["tokens"] = int(diagnosis.get("tokens") or 0) + int(explanation.get("tokens") or 0)
    out["explained_by"] = "llm"
    return out
