"""Verification after a container action: it runs (healthy when it has a check), and the alert's
own expression stops being true in Prometheus, both within one deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from sre_agent.actions.ports import ContainerVerifier, VerificationResult
from sre_agent.domain.evidence import Evidence, EvidenceStatus

QueryFn = Callable[[str], Awaitable[Evidence]]


async def expression_cleared(query: QueryFn, expr: str, deadline_s: float,
                             poll_s: float = 1.0) -> VerificationResult:
    """Poll the alert's PromQL until it returns nothing (the alert condition no longer holds)."""
    start = time.monotonic()
    last: Evidence | None = None
    while True:
        last = await query(expr)
        if last.status == EvidenceStatus.NO_DATA:
            return VerificationResult(ok=True, detail={
                "expression": expr, "waited_s": round(time.monotonic() - start, 2)})
        if time.monotonic() - start + poll_s > deadline_s:
            break
        await asyncio.sleep(poll_s)
    if last.status == EvidenceStatus.ERROR:
        # Prometheus cannot tell us: the container check stands, the gap is recorded.
        return VerificationResult(ok=True, detail={"expression": expr,
                                                   "prometheus": f"unavailable: {last.error}"})
    return VerificationResult(ok=False, error=f"alert expression still true after "
                                              f"{deadline_s:.0f}s", detail={
        "expression": expr, "value": last.data.get("value")})


async def verify_container_action(
    verifier: ContainerVerifier | None, query: QueryFn | None, *, target: str,
    expression: str | None, deadline_s: float,
) -> VerificationResult:
    start = time.monotonic()
    detail: dict[str, object] = {}
    if verifier is not None:
        running = await verifier.wait_recovered(target, deadline_s)
        detail["container"] = running.detail
        if not running.ok:
            return VerificationResult(ok=False, error=running.error or "container not recovered",
                                      detail=detail)
    if query is not None and expression:
        remaining = max(1.0, deadline_s - (time.monotonic() - start))
        cleared = await expression_cleared(query, expression, remaining)
        detail["prometheus"] = cleared.detail
        if not cleared.ok:
            return VerificationResult(ok=False, error=cleared.error, detail=detail)
    detail["waited_s"] = round(time.monotonic() - start, 2)
    return VerificationResult(ok=True, detail=detail)
