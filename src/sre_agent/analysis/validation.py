"""Checks every diagnosis passes before anyone acts on it. Pure: no LangChain, no I/O.

- ``LLMDiagnosis`` is the schema the model is asked to fill.
- ``coerce_llm_output`` turns the model's raw JSON object into a ``Diagnosis``, validating each
  proposed action on its own so one bad action never sinks the whole answer.
- ``validate_proposals`` keeps only actions from the closed ``ActionKind`` set whose container
  target (for container actions) is one of this incident's resolved targets, de-duplicated.
  Every dropped action is recorded in ``Diagnosis.dropped_actions`` as
  ``{"kind", "target", "reason"}``.
- The ``LLMError`` family is what an LLM analysis may end with; ``FallbackAnalyzer`` turns each
  into a short ``fallback_reason`` (``exc.reason``). They live here, not in ``llm.py``, so that
  the chain can catch them without importing LangChain.

Coercion policy for the model's answer (documented, and tested):
- ``summary`` must be a non-empty string, else ``LLMInvalidOutput``.
- ``confidence`` must be a number in 0..1, else ``LLMInvalidOutput`` (a 7 may mean "7/10" or
  nothing at all: we do not guess).
- an unknown ``category`` becomes ``unknown``; an unknown ``severity`` becomes ``warning``.
- ``evidence`` items are stringified and truncated; booleans accept true/false strings.
- an action that is not an object or whose kind is outside ``ActionKind`` is dropped.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field

from sre_agent.domain.diagnosis import (
    CONTAINER_ACTIONS,
    ActionKind,
    Category,
    Diagnosis,
    Engine,
    ProposedAction,
    Severity,
)
from sre_agent.domain.evidence import ResolvedTarget

MAX_ACTIONS = 10
MAX_TEXT = 2000
MAX_REASON = 500
MAX_EVIDENCE_ITEMS = 20
MAX_EVIDENCE_ITEM = 500


# --- errors an LLM analysis may end with -----------------------------------------------------


class LLMError(Exception):
    """An LLM analysis failed; the chain falls back to the rules. ``tokens``: spent so far."""

    def __init__(self, message: str, *, tokens: int = 0) -> None:
        super().__init__(message)
        self.tokens = tokens

    @property
    def reason(self) -> str:
        """Short text for ``Diagnosis.fallback_reason``."""
        return _clip(f"llm error: {self}", 200)


class LLMTimeout(LLMError):
    @property
    def reason(self) -> str:
        return "llm timeout"


class LLMHTTPError(LLMError):
    """The endpoint answered with an HTTP error (``status``), or could not be reached (None)."""

    def __init__(self, message: str, *, status: int | None = None, tokens: int = 0) -> None:
        super().__init__(message, tokens=tokens)
        self.status = status

    @property
    def reason(self) -> str:
        return f"llm http {self.status}" if self.status is not None else "llm connection error"


class LLMInvalidOutput(LLMError):
    @property
    def reason(self) -> str:
        return _clip(f"llm invalid output: {self}", 200)


class LLMRefusal(LLMError):
    @property
    def reason(self) -> str:
        return "llm refusal"


# --- the schema the model fills ----------------------------------------------------------------


class LLMProposedAction(BaseModel):
    kind: ActionKind = Field(description="one of the allowed action kinds")
    target: str | None = Field(
        default=None, description="container name, required for container actions; "
                                  "must be one of the incident's resolved targets")
    reason: str = Field(default="", description="why this action plausibly helps")


class LLMDiagnosis(BaseModel):
    """Diagnosis of an incident."""

    summary: str = Field(description="one or two sentences: what is wrong")
    probable_cause: str = Field(default="", description="the most likely cause")
    category: Category = Field(default=Category.UNKNOWN)
    severity: Severity = Field(default=Severity.WARNING)
    confidence: float = Field(ge=0.0, le=1.0, description="0..1, how sure you are")
    evidence: list[str] = Field(default_factory=list,
                                description="facts from the evidence that support the diagnosis")
    proposed_actions: list[LLMProposedAction] = Field(
        default_factory=list, description="may be empty; only allowed kinds and targets")
    issue_detected: bool = Field(default=True)
    requires_immediate_action: bool = Field(default=False)


# Bounds written into the schema: servers that enforce the schema with a grammar (llama.cpp,
# vLLM) cannot generate past them, so the answer stays short and a looping model ends early.
_SCHEMA_BOUNDS: dict[str, dict[str, int]] = {
    "summary": {"maxLength": 160}, "probable_cause": {"maxLength": 120},
    "evidence": {"maxItems": 2}, "proposed_actions": {"maxItems": 3},
}


def llm_output_json_schema() -> dict[str, Any]:
    """``LLMDiagnosis`` as a JSON schema dict (what ``with_structured_output`` is given), with
    length bounds on the free-text fields and lists."""
    schema = LLMDiagnosis.model_json_schema()
    props = schema.get("properties", {})
    # Not asked for: the gate and the rules decide urgency; fewer tokens to generate.
    for name in ("issue_detected", "requires_immediate_action"):
        props.pop(name, None)
    # Every field asked for is required: a grammar-enforcing server (llama.cpp) otherwise lets
    # a small model skip the optional ones (seen: no category, no probable cause, ever).
    schema["required"] = [n for n in ("summary", "probable_cause", "category", "severity",
                                      "confidence", "evidence", "proposed_actions")
                          if n in props]
    action = schema.get("$defs", {}).get("LLMProposedAction", {})
    if action:
        action["required"] = ["kind", "target", "reason"]
    for name, bounds in _SCHEMA_BOUNDS.items():
        if name in props:
            props[name].update(bounds)
    if isinstance(props.get("evidence", {}).get("items"), dict):
        props["evidence"]["items"]["maxLength"] = 80
    action_props = schema.get("$defs", {}).get("LLMProposedAction", {}).get("properties", {})
    if "reason" in action_props:
        action_props["reason"]["maxLength"] = 80
    return schema


EXPLANATION_FIELDS = ("summary", "probable_cause", "evidence")


def llm_explanation_json_schema() -> dict[str, Any]:
    """The answer when the actions are decided already (``combine.py`` rule 5): the text
    fields of ``llm_output_json_schema`` alone, so the model writes nothing that is discarded."""
    schema = llm_output_json_schema()
    schema["properties"] = {k: v for k, v in schema["properties"].items()
                            if k in EXPLANATION_FIELDS}
    schema["required"] = list(EXPLANATION_FIELDS)
    schema.pop("$defs", None)
    schema["title"] = "LLMExplanation"
    return schema


def coerce_llm_explanation(raw: Mapping[str, Any]) -> Diagnosis:
    """An explanation answer as a Diagnosis carrying only its text (engine llm); anything else
    the model wrote is ignored. Raises ``LLMInvalidOutput`` like ``coerce_llm_output``."""
    if not isinstance(raw, Mapping):
        raise LLMInvalidOutput(f"expected a JSON object, got {type(raw).__name__}")
    text = {k: raw.get(k) for k in EXPLANATION_FIELDS if k in raw}
    diagnosis, _ = coerce_llm_output({**text, "confidence": 0.5})
    return diagnosis


# --- coercion of the model's raw answer --------------------------------------------------------


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return _clip(value, limit)
    return _clip(json.dumps(value, default=str, ensure_ascii=False), limit)


def _bool(value: Any, default: bool) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
        return value.strip().lower() == "true"
    return default


def _drop(kind: Any, target: Any, reason: str) -> dict[str, Any]:
    return {"kind": None if kind is None else _text(kind, 100),
            "target": None if target is None else _text(target, 200),
            "reason": reason}


def _coerce_action(item: Any) -> ProposedAction | dict[str, Any]:
    """A ProposedAction, or the drop record explaining why not."""
    if not isinstance(item, Mapping):
        return _drop(None, None, "malformed action: not an object")
    kind, target = item.get("kind"), item.get("target")
    try:
        action_kind = ActionKind(str(kind).strip().lower()) if isinstance(kind, str) else None
    except ValueError:
        action_kind = None
    if action_kind is None:
        return _drop(kind, target, "unknown action kind")
    if target is not None and not isinstance(target, str):
        return _drop(kind, target, "malformed action: target is not a string")
    return ProposedAction(kind=action_kind, target=target.strip() if target else None,
                          reason=_text(item.get("reason"), MAX_REASON))


def coerce_llm_output(raw: Mapping[str, Any]) -> tuple[Diagnosis, list[dict[str, Any]]]:
    """The model's JSON object as a Diagnosis (engine llm), and the actions dropped on the way.

    The dropped actions are also recorded in the returned ``Diagnosis.dropped_actions``.
    Raises ``LLMInvalidOutput`` when the answer as a whole is unusable.
    """
    if not isinstance(raw, Mapping):
        raise LLMInvalidOutput(f"expected a JSON object, got {type(raw).__name__}")
    summary = raw.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise LLMInvalidOutput("missing summary")
    confidence = raw.get("confidence")
    if isinstance(confidence, str):
        try:
            confidence = float(confidence)
        except ValueError:
            raise LLMInvalidOutput("confidence is not a number") from None
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise LLMInvalidOutput("confidence missing or not a number")
    if not 0.0 <= float(confidence) <= 1.0:
        raise LLMInvalidOutput(f"confidence {confidence} outside 0..1")

    try:
        category = Category(str(raw.get("category", "unknown")).strip().lower())
    except ValueError:
        category = Category.UNKNOWN
    try:
        severity = Severity(str(raw.get("severity", "warning")).strip().lower())
    except ValueError:
        severity = Severity.WARNING

    evidence_raw = raw.get("evidence") or []
    if not isinstance(evidence_raw, list):
        evidence_raw = [evidence_raw]
    evidence = [_text(e, MAX_EVIDENCE_ITEM) for e in evidence_raw[:MAX_EVIDENCE_ITEMS]]

    actions_raw = raw.get("proposed_actions") or []
    if not isinstance(actions_raw, list):
        actions_raw = [actions_raw]
    actions: list[ProposedAction] = []
    dropped: list[dict[str, Any]] = []
    for index, item in enumerate(actions_raw):
        if index >= MAX_ACTIONS:
            dropped.append(_drop(item.get("kind") if isinstance(item, Mapping) else None,
                                 item.get("target") if isinstance(item, Mapping) else None,
                                 f"more than {MAX_ACTIONS} actions proposed"))
            continue
        result = _coerce_action(item)
        if isinstance(result, ProposedAction):
            actions.append(result)
        else:
            dropped.append(result)

    diagnosis = Diagnosis(
        summary=_clip(summary.strip(), MAX_TEXT),
        probable_cause=_text(raw.get("probable_cause"), MAX_TEXT),
        category=category,
        severity=severity,
        confidence=float(confidence),
        evidence=evidence,
        proposed_actions=actions,
        issue_detected=_bool(raw.get("issue_detected"), True),
        requires_immediate_action=_bool(raw.get("requires_immediate_action"), False),
        engine=Engine.LLM,
        dropped_actions=list(dropped),
    )
    return diagnosis, dropped


# --- the final check, for every engine ---------------------------------------------------------


def validate_proposals(diagnosis: Diagnosis, targets: list[ResolvedTarget]) -> Diagnosis:
    """A copy of ``diagnosis`` keeping only allowed, in-scope, distinct proposals.

    Drops (each appended to ``dropped_actions``): a kind outside ``ActionKind``; a container
    action with no target or with a target that is not one of ``targets``; a repeat of an
    earlier (kind, target).
    """
    allowed_targets = {t.name for t in targets}
    kept: list[ProposedAction] = []
    dropped: list[dict[str, Any]] = []
    seen: set[tuple[ActionKind, str | None]] = set()
    for action in diagnosis.proposed_actions:
        raw_kind: Any = action.kind
        try:
            kind = ActionKind(raw_kind)
        except ValueError:
            dropped.append(_drop(raw_kind, action.target, "unknown action kind"))
            continue
        target = action.target
        if kind in CONTAINER_ACTIONS:
            if not target:
                dropped.append(_drop(kind.value, target, "container action without a target"))
                continue
            if target not in allowed_targets:
                dropped.append(_drop(kind.value, target,
                                     "target is not a resolved target of this incident"))
                continue
        key = (kind, target)
        if key in seen:
            dropped.append(_drop(kind.value, target, "duplicate"))
            continue
        seen.add(key)
        kept.append(action if action.kind is kind else action.model_copy(update={"kind": kind}))
    if not dropped and len(kept) == len(diagnosis.proposed_actions):
        return diagnosis.model_copy(deep=True)
    return diagnosis.model_copy(update={
        "proposed_actions": kept,
        "dropped_actions": [*diagnosis.dropped_actions, *dropped],
    })
