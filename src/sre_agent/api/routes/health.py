"""Open endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sre_agent.api.deps import MetricsDep, StoreDep
from sre_agent.api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/health", response_model=HealthOut)
async def health() -> HealthOut:
    """Liveness: the process answers."""
    return HealthOut(status="ok")


@router.get("/ready", response_model=HealthOut,
            responses={503: {"model": HealthOut, "description": "store not writable"}})
async def ready(store: StoreDep) -> Response:
    """Readiness: the store accepts writes."""
    if await store.writable():
        return JSONResponse({"status": "ready"})
    return JSONResponse({"status": "store not writable"}, status_code=503)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text"}})
async def metrics(store: StoreDep, metrics: MetricsDep) -> Response:
    """The agent's own metrics in the Prometheus text format."""
    counts = await store.incident_counts()
    metrics.incidents_open.set(counts.get("open", 0) + counts.get("escalated", 0))
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
