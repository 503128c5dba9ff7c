"""create_app(settings): builds the FastAPI app. No import-time side effects."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from sre_agent import __version__
from sre_agent.api.middleware import AuthenticateWritesFirst, RequestId, WebhookDirect
from sre_agent.api.routes import (
    actions,
    audit,
    control,
    events,
    health,
    incidents,
    policy,
    slack,
    status,
    web,
    webhook,
)
from sre_agent.api.schemas import ErrorOut
from sre_agent.bootstrap import Services, build_services
from sre_agent.config import Role, Settings
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.ports import StoreUnavailable

log = structlog.get_logger("sre_agent.api")
# Every route can answer these for malformed requests; documented so clients know.
COMMON_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut, "description": "malformed request (e.g. a body that is not JSON)"},
    422: {"model": ErrorOut, "description": "request does not match the documented schema"},
}
ROUTERS = (health, webhook, status, incidents, actions, policy, audit, control, events, slack,
           web)
# A worker runs the pipeline and serves only what an orchestrator and Prometheus ask of it.
WORKER_ROUTERS = (health,)
SHUTDOWN_STEP_S = 15.0
WORKER_NOT_FOUND = ("this is a worker replica (--role worker): it serves /health, /ready and "
                    "/metrics only; send webhooks and operator requests to an api or all replica")


async def bounded(step: str, call: Coroutine[Any, Any, None],
                  timeout_s: float = SHUTDOWN_STEP_S) -> None:
    """Run one shutdown step for at most ``timeout_s``; past that it is left behind, logged.

    ``asyncio.wait`` rather than ``wait_for``: wait_for waits for a cancelled call to finish,
    which is what a stuck call never does."""
    task = asyncio.ensure_future(call)
    done, _ = await asyncio.wait({task}, timeout=timeout_s)
    if not done:
        task.cancel()
        log.warning("shutdown_step_timed_out", step=step, timeout_s=timeout_s)
    elif not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("shutdown_step_failed", step=step, error=repr(exc)[:300])


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.heartbeat.start()
        await services.runner.start()
        await services.inbox.start()  # after the runner: what it ingests is submitted there
        await services.delivery.start()
        log.info("agent_started", version=__version__, mode=settings.mode.value,
                 role=settings.role.value, replica=services.replica.id,
                 host=settings.host, port=settings.port, llm=settings.llm.enabled,
                 chat=sorted(settings.configured_destinations),
                 dashboard=f"http://{settings.host}:{settings.port}/status")
        try:
            yield
        finally:
            # Each step is bounded: a shutdown that hangs on one stuck await (a call that
            # ignores cancellation) would keep the process, and a test run, from ending.
            await bounded("delivery", services.delivery.stop())
            await bounded("inbox", services.inbox.stop())
            await bounded("runner", services.runner.stop())
            await bounded("heartbeat", services.heartbeat.stop())
            await bounded("store", services.store.close())
            log.info("agent_stopped")

    app = FastAPI(title="SRE Agent", version=__version__, lifespan=lifespan,
                  description="Alertmanager webhooks in, diagnosis and safety-gated "
                              "remediation out.")
    app.state.services = services
    worker = settings.role is Role.WORKER
    for module in WORKER_ROUTERS if worker else ROUTERS:
        app.include_router(module.router, responses=COMMON_RESPONSES)
    if worker:
        @app.exception_handler(StarletteHTTPException)
        async def not_here(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
            detail = WORKER_NOT_FOUND if exc.status_code in (404, 405) else exc.detail
            return JSONResponse({"detail": detail}, exc.status_code, headers=exc.headers)
    else:
        web.mount_static(app)

    # Added last = outermost: the request id first, then the write check, then the webhook.
    if not worker:
        app.add_middleware(WebhookDirect, handler=webhook.receive,
                           paths=frozenset(r.path for r in webhook.router.routes
                                           if isinstance(r, APIRoute)))
    app.add_middleware(AuthenticateWritesFirst, services=services)
    app.add_middleware(RequestId)

    @app.exception_handler(StoreUnavailable)
    async def store_unavailable(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        return JSONResponse({"detail": "store unavailable, retry later"}, 503,
                            headers={"Retry-After": "5"})

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()[:20]]
        return JSONResponse({"detail": errors}, 422)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("unhandled_error", error=repr(exc)[:300])
        return JSONResponse({"detail": "internal error"}, 500)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(title=app.title, version=app.version,
                             description=app.description, routes=app.routes)
        extra = WebhookNotification.model_json_schema(
            by_alias=True, ref_template="#/components/schemas/{model}")
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps.update(extra.pop("$defs", {}))
        comps["WebhookNotification"] = extra
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
