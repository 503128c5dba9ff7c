"""Fakes implementing the project's own Protocols, for fast tests of the core."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sre_agent.domain.diagnosis import ActionKind, Category, Diagnosis, ProposedAction
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget
from sre_agent.domain.results import (
    ActionRequest,
    ActionResult,
    ReconcileResult,
    ReconcileStatus,
    VerificationResult,
)

MANAGED = {"sre-agent.managed": "true"}


class FakeResolver:
    def __init__(self, targets: list[ResolvedTarget] | None = None) -> None:
        self.targets = targets if targets is not None else [
            ResolvedTarget(name="web", via="label:container", verified=True, labels=MANAGED)]

    async def resolve(self, ctx: AlertContext) -> tuple[list[ResolvedTarget], Evidence]:
        return list(self.targets), Evidence(source="target", name="resolution",
                                            status=EvidenceStatus.OK,
                                            data={"targets": [t.name for t in self.targets]})


class FakeAnalyzer:
    """Proposes a restart of every resolved target, with a fixed confidence."""

    name = "fake"

    def __init__(self, confidence: float = 0.9,
                 kind: ActionKind = ActionKind.RESTART_CONTAINER) -> None:
        self.confidence = confidence
        self.kind = kind
        self.calls = 0

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        self.calls += 1
        return Diagnosis(summary="fake", category=Category.AVAILABILITY,
                         confidence=self.confidence, proposed_actions=[
                             ProposedAction(kind=self.kind, target=t.name, reason="fake")
                             for t in targets])


class FakeBackend:
    kinds = frozenset({ActionKind.RESTART_CONTAINER, ActionKind.START_CONTAINER})

    def __init__(self, ok: bool = True, delay_s: float = 0.0,
                 took_effect: bool | None = True) -> None:
        self.ok = ok
        self.delay_s = delay_s
        self.took_effect = took_effect
        self.executed: list[ActionRequest] = []
        self.reconciled: list[ActionRequest] = []

    async def execute(self, request: ActionRequest) -> ActionResult:
        self.executed.append(request)
        await asyncio.sleep(self.delay_s)
        return ActionResult.of(self.ok, error=None if self.ok else "fake failure")

    async def reconcile(self, request: ActionRequest, started_at: datetime) -> ReconcileResult:
        self.reconciled.append(request)
        status = {True: ReconcileStatus.TOOK_EFFECT, False: ReconcileStatus.NO_EFFECT,
                  None: ReconcileStatus.UNKNOWN}[self.took_effect]
        return ReconcileResult(status=status, reason="fake")


class FakeVerifier:
    def __init__(self, ok: bool = True) -> None:
        self.ok = ok
        self.checked: list[str] = []

    async def wait_recovered(self, name: str, deadline_s: float,
                             stable_s: float = 0.0) -> VerificationResult:
        self.checked.append(name)
        if self.ok:
            return VerificationResult.passed({"container": name})
        return VerificationResult.failed("still down", {"container": name})
