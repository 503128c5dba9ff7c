"""FastAPI dependencies, as aliases routes can annotate with.

Routes ask for the one part they use (``StoreDep``, ``RunnerDep``, ``PolicyDep``,
``CommandsDep``, ``CurrentOperator`` ...); only the status and dashboard pages, which show
everything, take the whole wiring box (``ServicesDep``).
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Header, HTTPException, Request, status

from sre_agent.api.auth import cross_site_request, operator_authorized
from sre_agent.bootstrap import Services
from sre_agent.config import Settings
from sre_agent.domain.events import Actor
from sre_agent.domain.policy import Policy
from sre_agent.observability import Metrics
from sre_agent.pipeline.commands import CommandBus
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.ports import EventStore
from sre_agent.web import prefers_html
from sre_agent.web.sessions import COOKIE_NAME, CSRF_HEADER, Session, SessionSigner

_NAME = re.compile(r"[^A-Za-z0-9_.@-]")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


# The dependencies are ``async def``: FastAPI runs a plain ``def`` dependency in its thread
# pool, and six thread hops per request were most of a webhook's latency on a busy machine.
async def services_dep(request: Request) -> Services:
    return get_services(request)


ServicesDep = Annotated[Services, Depends(services_dep)]


async def get_store(services: ServicesDep) -> EventStore:
    return services.store


async def get_runner(services: ServicesDep) -> PipelineRunner:
    return services.runner


async def get_policy(services: ServicesDep) -> Policy:
    return services.policy


async def get_settings(services: ServicesDep) -> Settings:
    return services.settings


async def get_metrics(services: ServicesDep) -> Metrics:
    return services.metrics


async def get_commands(services: ServicesDep) -> CommandBus:
    return services.commands


StoreDep = Annotated[EventStore, Depends(get_store)]
RunnerDep = Annotated[PipelineRunner, Depends(get_runner)]
PolicyDep = Annotated[Policy, Depends(get_policy)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
CommandsDep = Annotated[CommandBus, Depends(get_commands)]


def session_signer(request: Request) -> SessionSigner | None:
    """The app's cookie signer; None when no operator token is set (no login then)."""
    services = get_services(request)
    token = services.settings.operator_token
    if token is None:
        return None
    signer: SessionSigner | None = getattr(request.app.state, "web_sessions", None)
    if signer is None:
        signer = SessionSigner(token.get_secret_value())
        request.app.state.web_sessions = signer
    return signer


def current_session(request: Request) -> Session | None:
    """The browser session carried by the request's cookie, if valid."""
    signer = session_signer(request)
    if signer is None:
        return None
    return signer.read(request.cookies.get(COOKIE_NAME))


def login_redirect(request: Request) -> HTTPException:
    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return HTTPException(status.HTTP_303_SEE_OTHER, "log in first",
                         headers={"Location": f"/login?next={quote(back, safe='')}"})


async def require_operator(
    request: Request,
    services: ServicesDep,
    authorization: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> None:
    """Operator auth: the bearer token, or a browser session cookie plus a CSRF token.

    Without an operator token (loopback default) anyone local may call, but a browser request
    that a page on another origin forged is refused.
    """
    unsafe = request.method not in SAFE_METHODS
    if services.settings.operator_token is None:
        if unsafe and cross_site_request(request.headers, request.headers.get("host")):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "cross-origin request refused")
        return
    if authorization:
        if operator_authorized(services.settings, authorization):
            return  # programs with the token need no CSRF token: browsers never add it
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or invalid operator token",
                            headers={"WWW-Authenticate": "Bearer"})
    session = current_session(request)
    if session is not None:
        signer = session_signer(request)
        assert signer is not None
        if unsafe and not signer.csrf_valid(session, request.headers.get(CSRF_HEADER)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, "missing or invalid CSRF token")
        return
    if request.method == "GET" and prefers_html(request.headers.get("accept")):
        raise login_redirect(request)
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED, "missing or invalid operator token",
        headers={"WWW-Authenticate": "Bearer"})


async def operator_actor(
    request: Request,
    x_operator: Annotated[str | None, Header(description="Operator name for the audit log")] = None,
) -> str:
    """The actor recorded for control changes: ``operator:NAME`` (sanitised, 64 chars).

    The name comes from ``X-Operator``, else from the browser session, else ``token``.
    """
    name = _NAME.sub("", x_operator or "")[:64]
    if not name:
        session = current_session(request)
        name = session.name if session is not None else ""
    return Actor.operator(name or "token")


OperatorDep = Depends(require_operator)
CurrentOperator = Annotated[str, Depends(operator_actor)]
