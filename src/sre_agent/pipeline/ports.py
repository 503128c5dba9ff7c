"""Protocols the pipeline depends on. Adapters implement them; tests use Fake<Port>s."""

from __future__ import annotations

from typing import Protocol

from sre_agent.domain.diagnosis import Diagnosis
from sre_agent.domain.evidence import AlertContext, Evidence, ResolvedTarget


class TargetResolver(Protocol):
    async def resolve(self, ctx: AlertContext) -> tuple[list[ResolvedTarget], Evidence]:
        """Map an incident's alerts to containers. Never raises: failures go in the Evidence."""
        ...


class EvidenceSource(Protocol):
    name: str

    async def collect(self, ctx: AlertContext, targets: list[ResolvedTarget]) -> list[Evidence]:
        """Read-only and time-bounded. Never raises: a failure is an Evidence with status error."""
        ...


class Analyzer(Protocol):
    name: str

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        """Produce one Diagnosis. May raise; the caller falls back to the rules."""
        ...
