"""Verification after a container action: it runs (healthy when it has a check), and the alert's
own expression stops being true in Prometheus, both within one deadline.

The result is passed, failed, or inconclusive when a check could not tell (Prometheus
unreachable): an inconclusive result is never counted as a pass.
"""

from __future__ import annotations

import asyncio
import time

from sre_agent.domain.evidence import Evidence, EvidenceStatus
from sre_agent.domain.results import VerificationResult, VerificationStatus
from sre_agent.ports import ContainerVerifier, QueryFn


async def expression_cleared(query: QueryFn, expr: str, deadline_s: float,
                             poll_s: float = 1.0) -> VerificationResult:
    """Poll the alert's PromQL until it returns nothing (the alert condition no longer holds)."""
    start = time.monotonic()
    last: Evidence | None = None
    while True:
        last = await query(expr)
        if last.status == EvidenceStatus.NO_DATA:
            return VerificationResult.passed({
                "expression": expr, "waited_s": round(time.monotonic() - start, 2)})
        if time.monotonic() - start + poll_s > deadline_s:
            break
        await asyncio.sleep(poll_s)
    if last.status == EvidenceStatus.ERROR:
        # Prometheus cannot tell us: never a pass. The caller records it as inconclusive.
        return VerificationResult.inconclusive(
            f"Prometheus unavailable: {last.error}",
            {"expression": expr, "prometheus": f"unavailable: {last.error}"})
    return VerificationResult.failed(f"alert expression still true after {deadline_s:.0f}s",
                                     {"expression": expr, "value": last.data.get("value")})


async def verify_container_action(
    verifier: ContainerVerifier | None, query: QueryFn | None, *, target: str,
    expression: str | None, deadline_s: float, stable_s: float = 0.0,
) -> VerificationResult:
    start = time.monotonic()
    detail: dict[str, object] = {}
    if verifier is not None:
        running = await verifier.wait_recovered(target, deadline_s, stable_s)
        detail["container"] = running.detail
        if running.status != VerificationStatus.PASSED:
            return running.model_copy(update={
                "error": running.error or "container not recovered", "detail": detail})
    if query is not None and expression:
        remaining = max(1.0, deadline_s + stable_s - (time.monotonic() - start))
        cleared = await expression_cleared(query, expression, remaining)
        detail["prometheus"] = cleared.detail
        if cleared.status != VerificationStatus.PASSED:
            return cleared.model_copy(update={"detail": detail})
    detail["waited_s"] = round(time.monotonic() - start, 2)
    return VerificationResult.passed(detail)
