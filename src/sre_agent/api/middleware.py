"""The app's middlewares, as plain ASGI: a request id for every request, operator
authentication of writes before FastAPI parses their bodies, and the webhook's direct path.

Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs the
rest of the app in a task behind memory streams, which cost a tenth of a webhook's CPU time.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog
from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sre_agent.api.deps import SAFE_METHODS, require_operator

if TYPE_CHECKING:
    from sre_agent.bootstrap import Services

# Write paths that authenticate themselves: the webhook (its own credentials) and the login
# form (it is how credentials arrive); logout checks its session's CSRF token itself.
# Slack's button clicks carry Slack's signature instead (api/routes/slack.py checks it).
SELF_AUTHENTICATED_PREFIXES = ("/webhook/", "/login", "/logout", "/integrations/slack/")


class RequestId:
    """Binds a fresh request id (and the path) to the log context; answers it as X-Request-ID.

    The id is 16 hex digits: 8 random ones drawn once per process, then a counter. Distinct
    across replicas and restarts in practice, without a getrandom call per request (it
    releases the GIL, and under load the event loop then waited for the writer thread)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._prefix = os.urandom(4).hex()
        self._counter = itertools.count(1)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = f"{self._prefix}{next(self._counter) & 0xFFFFFFFF:08x}"
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


class WebhookDirect:
    """POST to the webhook's paths goes straight to its handler, past FastAPI's routing,
    dependency solving and exception middlewares: that stack was two thirds of the
    webhook's CPU in the app (130 of 180 us per notification, the ASGI app driven in-process
    with the store stubbed; 40 us this way). The handler is the webhook route's own function
    (api/routes/webhook.py), which reads its wiring from the request and answers every error
    itself; the route stays declared for the OpenAPI schema, and any other method or path
    goes through FastAPI as before. Errors it does not catch still reach the app's 500
    handler, which wraps every middleware."""

    def __init__(self, app: ASGIApp, handler: Callable[[Request], Awaitable[Response]],
                 paths: frozenset[str]) -> None:
        self.app, self.handler, self.paths = app, handler, paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] == "http" and scope["method"] == "POST"
                and scope["path"] in self.paths):
            response = await self.handler(Request(scope, receive))
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
