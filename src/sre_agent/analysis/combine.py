"""The rules and the LLM together: switching the LLM on can only help. Pure, no I/O.

``combine(rules, llm, evidence)`` is the combined engine's one rule (also in
``memory-bank/systemPatterns.md``):

1. The LLM contributes the text: ``summary``, ``probable_cause`` and its cited ``evidence``
   (the rules' summary is kept in the evidence list as ``runbook: ...``).
2. A runbook that matched with confidence >= ``UNDERSTOOD_CONFIDENCE`` (the rules *understood*
   the incident) keeps its actions, its category, severity and confidence. An LLM action the
   rules did not propose is an alternative only when the evidence backs it (see
   ``evidence_for``: a container action whose container state shows what that action fixes);
   a backed alternative replaces the rules' container action on the same target and
   **needs approval** (``ProposedAction.needs_approval``) whatever the mode. Every other LLM
   action is recorded in ``dropped_actions`` with the reason, not proposed.
3. No confident runbook match: the LLM's proposals stand (the gate still decides), its
   category too (unless it said ``unknown``), except that nothing changes or hides anything on
   the LLM's word alone: a container action needs the same evidence backing as in 2 (else it is
   dropped, with the reason); a ``silence_alert`` is dropped where the rules escalate (a human
   must look: the LLM may not hide that), and needs approval elsewhere. The rules'
   notify/escalate are kept beside them, so an incident nobody has a runbook for still reaches
   a human. When none of the LLM's proposals remains, the rules' proposals stand.
4. ``action_engine`` and ``action_reason`` record which engine chose the actions and why.
5. The LLM is not waited for when it cannot change the actions (``llm_can_change_actions``):
   by 2, when the rules understood the incident and the evidence backs no container action
   they did not propose, every LLM answer gives the rules' actions back. The agent then acts
   on the rules at once and the LLM's text arrives later as an explanation (the pipeline's
   ``DiagnosisExplained``): switching the LLM on costs such an incident no time to recover.
"""

from __future__ import annotations

from typing import Any

from sre_agent.domain.diagnosis import (
    CONTAINER_ACTIONS,
    ActionKind,
    Category,
    Diagnosis,
    Engine,
    ProposedAction,
)
from sre_agent.domain.evidence import Evidence, container_state

UNDERSTOOD_CONFIDENCE = 0.6
STOPPED_STATES = frozenset({"exited", "created", "dead", "stopped"})
HUMAN_KINDS = frozenset({ActionKind.NOTIFY, ActionKind.ESCALATE})


def understood(rules: Diagnosis) -> bool:
    """A runbook matched with enough confidence for its actions to stand."""
    return rules.runbook is not None and rules.confidence >= UNDERSTOOD_CONFIDENCE



def backed_kind(target: str, evidence: list[Evidence]) -> tuple[ActionKind, str] | None:
    """The one container action the evidence backs on ``target``, with the fact, or None.

    ``start_container``: the target's state is stopped (exited, created, dead).
    ``restart_container``: the target is running but unhealthy, or restarting.
    A container's state backs at most one of them.
    """
    found = container_state(evidence, target)
    if found is None:
        return None
    state = found.data
    status = str(state.get("status", "")).lower()
    health = str(state.get("health", "")).lower()
    if status in STOPPED_STATES:
        return ActionKind.START_CONTAINER, f"container {target} is {status}"
    if (status == "running" and health == "unhealthy") or status == "restarting":
        return ActionKind.RESTART_CONTAINER, f"container {target} is {status}" + (
            f" and {health}" if health == "unhealthy" else "")
    return None


def evidence_for(action: ProposedAction, evidence: list[Evidence]) -> str | None:
    """The fact that backs a container action (see ``backed_kind``), or None.

    Other kinds are never "backed" here: they are not alternatives to a runbook's fix.
    """
    if action.kind not in CONTAINER_ACTIONS or not action.target:
        return None
    backed = backed_kind(action.target, evidence)
    return backed[1] if backed is not None and backed[0] is action.kind else None


def llm_can_change_actions(rules: Diagnosis, targets: list[str],
                           evidence: list[Evidence]) -> bool:
    """Whether any answer of the LLM could change the actions ``combine`` proposes.

    When the rules understood the incident, an LLM action stands only as an evidence-backed
    container action on a resolved target that the rules did not propose. If every resolved
    target's backed action (at most one each) is already among the rules' proposals, or none
    is backed, every LLM answer leaves the rules' actions as they are: the agent acts on them
    at once and the LLM only explains (``DiagnosisExplained``). Without a confident runbook
    match the LLM's answer always matters.
    """
    if not understood(rules):
        return True
    rule_keys = {_key(a) for a in rules.proposed_actions}
    for target in targets:
        backed = backed_kind(target, evidence)
        if backed is not None and (backed[0], target) not in rule_keys:
            return True
    return False


def _key(action: ProposedAction) -> tuple[ActionKind, str | None]:
    return action.kind, action.target


def _dropped(action: ProposedAction, reason: str) -> dict[str, Any]:
    return {"kind": action.kind.value, "target": action.target, "reason": reason}


def _text_from_llm(rules: Diagnosis, llm: Diagnosis) -> dict[str, Any]:
    cited = list(llm.evidence)
    if rules.runbook:
        cited.append(f"runbook {rules.runbook}: {rules.summary}"[:500])
    return {"summary": llm.summary, "probable_cause": llm.probable_cause or rules.probable_cause,
            "evidence": cited}


def combine(rules: Diagnosis, llm: Diagnosis, evidence: list[Evidence]) -> Diagnosis:
    """One diagnosis from both engines' answers for the same incident (see module doc)."""
    rule_keys = {_key(a) for a in rules.proposed_actions}
    dropped = [*llm.dropped_actions]
    base = llm.model_copy(update=_text_from_llm(rules, llm))
    if understood(rules):
        actions = list(rules.proposed_actions)
        replaced: list[str] = []
        for action in llm.proposed_actions:
            if _key(action) in rule_keys:
                continue
            fact = evidence_for(action, evidence)
            if fact is None:
                dropped.append(_dropped(action, f"runbook {rules.runbook} matched (confidence "
                                                f"{rules.confidence:.2f}); the LLM's "
                                                "alternative is not backed by the evidence"))
                continue
            actions = [a for a in actions
                       if not (a.kind in CONTAINER_ACTIONS and a.target == action.target)]
            actions.append(action.model_copy(update={
                "needs_approval": True,
                "reason": f"{action.reason} (evidence: {fact}; LLM alternative to runbook "
                          f"{rules.runbook}, needs approval)"[:500]}))
            replaced.append(f"{action.kind.value} on {action.target} ({fact})")
        if replaced:
            engine, why = Engine.LLM, (f"runbook {rules.runbook} matched, but the LLM's "
                                       f"alternative is backed by the evidence: "
                                       f"{'; '.join(replaced)}; it needs approval")
        else:
            engine, why = Engine.RULES, (f"runbook {rules.runbook} matched with confidence "
                                         f"{rules.confidence:.2f}: its actions stand")
        return base.model_copy(update={
            "proposed_actions": actions, "category": rules.category,
            "severity": rules.severity, "confidence": rules.confidence,
            "issue_detected": rules.issue_detected,
            "requires_immediate_action": rules.requires_immediate_action,
            "runbook": rules.runbook, "dropped_actions": dropped,
            "action_engine": engine, "action_reason": why})
    category = llm.category if llm.category is not Category.UNKNOWN else rules.category
    if not llm.proposed_actions:
        return base.model_copy(update={
            "proposed_actions": list(rules.proposed_actions), "category": category,
            "runbook": rules.runbook, "dropped_actions": dropped,
            "confidence": rules.confidence,
            "action_engine": Engine.RULES,
            "action_reason": "no runbook matched confidently and the LLM proposed nothing: "
                             "the rules' proposals stand"})
    actions = []
    for action in llm.proposed_actions:
        if action.kind in CONTAINER_ACTIONS:
            fact = evidence_for(action, evidence)
            if fact is None:
                dropped.append(_dropped(action, "no runbook matched confidently and the "
                                                "evidence does not back this container action"))
                continue
            reason = f"{action.reason} (evidence: {fact})"[:500]
            action = action.model_copy(update={"reason": reason})
        elif action.kind is ActionKind.SILENCE_ALERT:
            if ActionKind.ESCALATE in {a.kind for a in rules.proposed_actions}:
                dropped.append(_dropped(action, "no runbook matched confidently and the rules "
                                                "escalate: a silence would hide the incident "
                                                "from the human it is escalated to"))
                continue
            action = action.model_copy(update={"needs_approval": True})
        actions.append(action)
    if not actions:
        return base.model_copy(update={
            "proposed_actions": list(rules.proposed_actions), "category": category,
            "runbook": rules.runbook, "dropped_actions": dropped,
            "confidence": rules.confidence, "action_engine": Engine.RULES,
            "action_reason": "no runbook matched confidently and none of the LLM's proposals "
                             "is backed by the evidence: the rules' proposals stand"})
    keys = {_key(a) for a in actions}
    actions += [a for a in rules.proposed_actions
                if a.kind in HUMAN_KINDS and _key(a) not in keys]
    return base.model_copy(update={
        "proposed_actions": actions, "category": category, "runbook": rules.runbook,
        "dropped_actions": dropped, "action_engine": Engine.LLM,
        "action_reason": "no runbook matched confidently"
                         + (f" (runbook {rules.runbook}, confidence {rules.confidence:.2f})"
                            if rules.runbook else "")
                         + ": the LLM's proposals stand, the rules' notify/escalate beside them"})
