"""What every remediation handler shares: its dependencies, the step it handles, and how an
action row becomes a gate proposal or a backend request."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog

from sre_agent.domain.actions import ActionStatus
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import StoredEvent
from sre_agent.domain.incident import Mode
from sre_agent.domain.policy import Decision, Policy, Proposal
from sre_agent.domain.results import ActionRequest
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import ActionBackend, ContainerVerifier, EventStore, QueryFn

log = structlog.get_logger("sre_agent.remediate")


class StepKind(StrEnum):
    GATE = "gate"  # a proposal (or an approved action) meets the gate
    EXPIRE = "expire"  # an approval request may have outlived its window
    ACT = "act"  # the gate allowed it: run it exactly once
    RECONCILE = "reconcile"  # left running by a process that died: ask the world
    VERIFY = "verify"  # it succeeded: did it fix the alert?
    BREAKER = "breaker"  # it failed or did not help: trip the target's breaker?


@dataclass(frozen=True)
class Step:
    """One unit of work on one action; ``decision`` is the gate's, for ACT."""

    kind: StepKind
    action_id: str
    decision: Decision | None = None


@dataclass
class Deps:
    """What the handlers need from the outside world (wired in ``bootstrap``)."""

    backends: dict[ActionKind, ActionBackend]
    policy: Policy
    default_mode: Mode
    verifier: ContainerVerifier | None = None
    query: QueryFn | None = None
    clock: Callable[[], float] = field(default=time.time)


@dataclass
class Context:
    work: IncidentWork
    store: EventStore
    deps: Deps


# A handler does one step and returns what it appended (typed events) and what comes next.
Output = list[StoredEvent | Step]
Handler = Callable[[Step, dict[str, Any], Context], Awaitable[Output]]


def action_request(row: dict[str, Any], work: IncidentWork) -> ActionRequest:
    labels = dict(work.alerts[0]["labels"]) if work.alerts else {}
    return ActionRequest(
        action_id=row["id"], idempotency_key=row["idempotency_key"], incident_id=work.id,
        kind=ActionKind(row["kind"]), target=row["target"], reason=row["reason"],
        params=dict(row["proposal"].get("params", {})), labels=labels,
        summary=str(work.incident["title"]))


def proposal_of(row: dict[str, Any]) -> Proposal:
    p = row["proposal"]
    return Proposal(kind=ActionKind(row["kind"]), target=row["target"],
                    confidence=float(p.get("confidence", 0.0)),
                    target_verified=bool(p.get("target_verified", False)),
                    target_labels=dict(p.get("target_labels", {})),
                    agreed=bool(p.get("agreed", True)),
                    needs_approval=bool(p.get("needs_approval", False)),
                    approved=row["status"] == ActionStatus.APPROVED)
