"""The app's two middlewares, as plain ASGI: a request id for every request, and operator
authentication of writes before FastAPI parses their bodies.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs the
rest of the app in a task behind memory streams, which cost a tenth of a webhook's CPU time.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

import structlog
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sre_agent.api.deps import SAFE_METHODS, require_operator

if TYPE_CHECKING:
    from sre_agent.bootstrap import Services

# Write paths that authenticate themselves: the webhook (its own credentials) and the login
# form (it is how credentials arrive); logout checks its session's CSRF token itself.
# Slack's button clicks carry Slack's signature instead (api/routes/slack.py checks it).
SELF_AUTHENTICATED_PREFIXES = ("/webhook/", "/login", "/logout", "/integrations/slack/")


class RequestId:
    """Binds a fresh request id (and the path) to the log context; answers it as X-Request-ID."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id,
                                               path=str(scope["path"])[:200])

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).append("X-Request-ID", request_id)
            await send(message)
        await self.app(scope, receive, send_with_id)


class AuthenticateWritesFirst:
    """Operator writes are authenticated before FastAPI parses their body, so a client
    without credentials gets 401, never a 400/422 that reveals the schema."""

    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] not in SAFE_METHODS
                and not str(scope["path"]).startswith(SELF_AUTHENTICATED_PREFIXES)):
            request = Request(scope)  # headers and cookies only: the body stays unread
            try:
                await require_operator(request, self.services,
                                       request.headers.get("authorization"))
            except HTTPException as exc:
                response = JSONResponse({"detail": exc.detail}, exc.status_code,
                                        headers=exc.headers)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
