"""POST /webhook/alertmanager: authenticate, validate, store durably, then answer: 200 once
correlated into incidents (the default), or 202 once queued in the inbox (webhook_ack=queued)."""

from __future__ import annotations

import json
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from sre_agent.api.auth import webhook_authorized
from sre_agent.api.deps import get_services
from sre_agent.api.schemas import ErrorOut, WebhookAccepted, WebhookQueued
from sre_agent.config import WebhookAck
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.pipeline.inbox import after_ingest
from sre_agent.ports import StoreUnavailable

router = APIRouter(prefix="/webhook", tags=["webhook"])
log = structlog.get_logger("sre_agent.webhook")

_BODY_DOC: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/"
                                                            "WebhookNotification"}}},
    }
}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": WebhookQueued, "description": "durable in the inbox, correlated next "
                                                 "(SRE_AGENT_WEBHOOK_ACK=queued)"},
    400: {"model": ErrorOut, "description": "body is not valid JSON"},
    401: {"model": ErrorOut, "description": "missing or wrong credentials"},
    413: {"model": ErrorOut, "description": "body larger than SRE_AGENT_MAX_BODY_BYTES"},
    415: {"model": ErrorOut, "description": "content type is not JSON"},
    422: {"model": ErrorOut, "description": "not a version-4 Alertmanager notification"},
    503: {"model": ErrorOut, "description": "store cannot write; Alertmanager will retry"},
}


class BadRequest(Exception):
    def __init__(self, status: int, detail: str | list[dict[str, Any]]) -> None:
        self.status, self.detail = status, detail


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(413, f"body of {declared} bytes exceeds the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, content_type: str) -> WebhookNotification:
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise BadRequest(415, f"content type must be application/json, got {media or 'none'!r}")
    if not body.strip():
        raise BadRequest(400, "empty body: expected an Alertmanager JSON notification")
    try:
        raw = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(400, "body is not valid UTF-8") from None
    except RecursionError:
        raise BadRequest(400, "JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise BadRequest(400, f"invalid JSON: {exc.msg} at line {exc.lineno} column "
                              f"{exc.colno}") from None
    if not isinstance(raw, dict):
        raise BadRequest(422, "body must be a JSON object (an Alertmanager notification)")
    try:
        return WebhookNotification.model_validate(raw)
    except ValidationError as exc:
        errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
                  for e in exc.errors(include_url=False, include_input=False)[:20]]
        raise BadRequest(422, errors) from None
    except RecursionError:
        raise BadRequest(400, "JSON nested too deeply") from None


@router.post("/alertmanager", response_model=WebhookAccepted, responses=_RESPONSES,
             openapi_extra=_BODY_DOC)
@router.post("/alerts", response_model=WebhookAccepted, responses=_RESPONSES,
             openapi_extra=_BODY_DOC, include_in_schema=True, operation_id="webhook_alerts")
async def receive(request: Request) -> JSONResponse:
    """Receive an Alertmanager notification; 200 only after its events are durable."""
    # The wiring is read here, not declared as dependencies: FastAPI's dependency solving was
    # a fifth of the webhook's CPU under load (py-spy, `api` role, wrk at concurrency 32).
    services = get_services(request)
    store, runner, settings, metrics = (services.store, services.runner, services.settings,
                                        services.metrics)
    started = time.perf_counter()
    outcome = "accepted"
    in_flight = False
    try:
        if not webhook_authorized(settings, request.headers.get("authorization")):
            outcome = "unauthorized"
            return JSONResponse({"detail": "missing or invalid webhook credentials"}, 401,
                                headers={"WWW-Authenticate": 'Bearer, Basic realm="sre-agent"'})
        try:
            body = await _read_body(request, settings.max_body_bytes)
            # From here to the answer the pipeline waits its turn (ingest_first.py); not while
            # the body arrives, so a slow client cannot hold analysis back.
            services.ingest_first.enter()
            in_flight = True
            notification = _parse(body, request.headers.get("content-type", ""))
        except BadRequest as bad:
            outcome = f"rejected_{bad.status}"
            log.info("webhook_rejected", status=bad.status,
                     detail=bad.detail if isinstance(bad.detail, str) else bad.detail[:3])
            return JSONResponse({"detail": bad.detail}, bad.status)
        try:
            if settings.webhook_ack is WebhookAck.QUEUED:
                inbox_id = await store.enqueue(body.decode("utf-8"))  # decoded by _parse
            else:
                result = await store.ingest(notification)
        except StoreUnavailable as exc:
            outcome = "store_unavailable"
            log.error("webhook_store_unavailable", error=str(exc))
            return JSONResponse({"detail": "store unavailable, retry later"}, 503,
                                headers={"Retry-After": "5"})
        if settings.webhook_ack is WebhookAck.QUEUED:
            outcome = "queued"
            services.inbox.notify()
            log.info("webhook_queued", group_key=notification.group_key[:200],
                     alerts=len(notification.alerts), inbox_id=inbox_id)
            return JSONResponse(WebhookQueued(inbox_id=inbox_id,
                                              alerts=len(notification.alerts)).model_dump(), 202)
        after_ingest(result, metrics, runner.submit)
        log.info("webhook_accepted", group_key=notification.group_key[:200],
                 alerts=len(notification.alerts), new=result.new_alerts,
                 duplicates=result.duplicates, late=result.late, incidents=result.touched[:10])
        incidents = result.touched + [i for i in result.duplicate_of if i not in result.touched]
        return JSONResponse(WebhookAccepted(
            incidents=incidents, alerts_new=result.new_alerts,
            alerts_duplicate=result.duplicates, alerts_late=result.late).model_dump())
    finally:
        if in_flight:
            services.ingest_first.leave()
        metrics.notifications.labels(outcome).inc()
        metrics.webhook_latency.observe(time.perf_counter() - started)
