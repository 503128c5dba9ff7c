"""GET /status: what the agent is doing, as JSON for programs and as a dashboard for browsers."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from fastapi import APIRouter, Request, Response

from sre_agent import __version__
from sre_agent.api.deps import OperatorDep, ServicesDep
from sre_agent.api.routes.web import dashboard_page
from sre_agent.api.schemas import (
    ComponentOut,
    EffectivenessOut,
    ErrorOut,
    LeaseOut,
    ReplicaOut,
    StatusOut,
)
from sre_agent.bootstrap import Services
from sre_agent.config import Settings
from sre_agent.domain.control import effective_control
from sre_agent.domain.events import EventType
from sre_agent.ports import StoreUnavailable
from sre_agent.replica import is_stale
from sre_agent.web import prefers_html

router = APIRouter(tags=["status"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


async def replicas_and_leases(services: Services) -> tuple[list[ReplicaOut], list[LeaseOut]]:
    """The replicas on this database, each with the incidents it holds leases on."""
    now = time.time()
    rows = await services.store.list_replicas()
    held = await services.store.list_leases(now)
    leases = [LeaseOut(incident_id=str(x["incident_id"]), owner=str(x["owner"]),
                       expires_in_s=round(float(x["expires_at"]) - now, 1)) for x in held]
    period = services.settings.heartbeat_s
    replicas = [ReplicaOut(
        id=str(r["id"]), role=str(r["role"]), host=str(r["host"]), pid=int(r["pid"]),
        version=str(r["version"]), started_at=_iso(float(r["started_at"])),
        last_heartbeat_at=_iso(float(r["heartbeat_at"])),
        heartbeat_age_s=round(max(0.0, now - float(r["heartbeat_at"])), 1),
        stale=is_stale(float(r["heartbeat_at"]), now, period),
        this=r["id"] == services.replica.id,
        leases=[x.incident_id for x in leases if x.owner == r["id"]]) for r in rows]
    return replicas, leases


async def build_status(services: Services) -> StatusOut:
    store = services.store
    settings = services.settings
    try:
        counts = await store.incident_counts()
        inbox = await store.inbox_depth()
        state = effective_control(await store.control_state(), settings.mode)
        last = await store.last_event([EventType.ALERT_RECEIVED, EventType.ALERT_RESOLVED])
        store_status = ComponentOut(status="ok" if await store.writable() else "read_only")
    except StoreUnavailable as exc:
        counts, last, inbox = {}, None, 0
        state = effective_control({}, settings.mode)
        store_status = ComponentOut(status="unavailable", detail=str(exc))
    llm = services.analysis.analyzer.status()  # state/detail: analysis.chain.llm_state
    llm_out = ComponentOut(status=llm["state"], detail=" · ".join(
        p for p in (llm.get("model"), llm["detail"]) if p))
    components = {
        "llm": llm_out,
        "prometheus": ComponentOut(status="configured" if settings.prometheus_url else "disabled"),
        "docker": ComponentOut(status="configured" if services.analysis.docker else "disabled"),
        "alertmanager": ComponentOut(
            status="configured" if settings.alertmanager_url else "disabled"),
        **chat_components(settings),
    }
    try:
        pending = len(await store.list_actions(status="pending_approval", limit=1000))
        breakers = [b["target"] for b in await store.list_breakers() if b["state"] == "open"]
        stats = await store.action_stats()
    except StoreUnavailable:
        pending, breakers, stats = 0, [], []
    try:
        replicas, leases = await replicas_and_leases(services)
    except StoreUnavailable:
        replicas, leases = [], []
    return StatusOut(
        version=__version__, uptime_s=round(time.time() - services.started_at, 3),
        mode=state.mode, paused=state.paused, store=store_status, incidents=counts,
        last_alert_at=last.at if last else None, backlog=services.runner.backlog,
        inbox=inbox, components=components, pending_approvals=pending,
        open_breakers=breakers,
        effectiveness=[EffectivenessOut(**row) for row in stats], llm=llm,
        role=settings.role.value, replica_id=services.replica.id, replicas=replicas,
        leases=leases)


def chat_components(settings: Settings) -> dict[str, ComponentOut]:
    """Slack, Teams and PagerDuty: configured or not, and how (never a token or URL)."""
    if settings.slack_bot_token is not None:
        buttons = settings.slack_signing_secret is not None and bool(settings.slack_approvers)
        slack = ComponentOut(status="configured", detail=(
            f"bot in {settings.slack_channel}; Approve/Reject buttons "
            + (f"for {len(settings.slack_approvers)} approver(s)" if buttons else "off")))
    elif settings.slack_webhook_url is not None:
        slack = ComponentOut(status="configured", detail="incoming webhook: notify only")
    else:
        slack = ComponentOut(status="disabled")
    return {"slack": slack,
            "teams": ComponentOut(status="configured" if settings.teams_webhook_url is not None
                                  else "disabled"),
            "pagerduty": ComponentOut(status="configured"
                                      if settings.pagerduty_routing_key is not None
                                      else "disabled")}


@router.get("/status", response_model=StatusOut, responses={
    200: {"content": {"text/html": {"schema": {"type": "string"}}},
          "description": "JSON for programs; the live dashboard for `Accept: text/html`"},
    303: {"description": "a browser without a session is sent to /login"}})
async def get_status(request: Request, services: ServicesDep) -> StatusOut | Response:
    """Version, uptime, mode, pause state, store health, incident counts, components."""
    if prefers_html(request.headers.get("accept")):
        return await dashboard_page(request, services, build_status)
    return await build_status(services)
