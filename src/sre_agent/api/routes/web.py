"""The browser side: rendering, login/logout, and the static files of the dashboard.

``/status`` and ``/incidents/{id}`` render through :func:`dashboard_page` and
:func:`incident_page` when a browser asks for HTML; their JSON stays as it was.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import cache
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from sre_agent import __version__
from sre_agent.api.auth import cross_site_request, operator_token_matches
from sre_agent.api.deps import current_session, session_signer
from sre_agent.api.schemas import StatusOut
from sre_agent.bootstrap import Services
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import GENESIS_HASH, EventType, verify_chain
from sre_agent.domain.incident import IncidentStatus, unresolved_count
from sre_agent.domain.notifications import chat_links
from sre_agent.domain.ownership import ownership
from sre_agent.web import (
    STATIC_DIR,
    TEMPLATES_DIR,
    action_view,
    evidence_view,
    incident_view,
    operator_view,
    replica_view,
    safe_next,
    views,
)
from sre_agent.web.sessions import COOKIE_NAME, CSRF_FIELD, CSRF_HEADER, LoginThrottle
from sre_agent.web.views import reveal_controls

router = APIRouter(tags=["web"], include_in_schema=False)

SECURITY_HEADERS = {
    # Everything the page needs comes from this origin: no inline script, no CDN, no fonts.
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
FULL_AUDIT_S = 300.0
AUDIT_BATCH = 5000
MAX_FORM_BYTES = 4096


@cache
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES_DIR)), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      finalize=_reveal)
    env.filters["fmt_time"] = views.fmt_time
    return env


def _reveal(value: Any) -> Any:
    """Every string a template prints, whichever view built it, shows hidden characters."""
    if isinstance(value, str) and not isinstance(value, Markup):  # Markup is ours, escaped
        return reveal_controls(value)
    return value


@cache
def asset_version() -> str:
    digest = hashlib.sha256()
    for path in sorted(STATIC_DIR.iterdir()):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def mount_static(app: FastAPI) -> None:
    """Serve the dashboard's CSS and JS under /static (public: they hold no data)."""
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")


def render(request: Request, template: str, context: dict[str, Any], *,
           status_code: int = 200, page: str = "", show_nav: bool = True) -> HTMLResponse:
    signer = session_signer(request)
    session = current_session(request)
    base: dict[str, Any] = {
        "csrf_token": signer.csrf_token(session) if signer and session else "",
        "logged_in": session is not None, "operator_name": session.name if session else "",
        "asset_version": asset_version(), "version": __version__, "page": page,
        "show_nav": show_nav, "last_seq": 0, "incident_id": None,
    }
    html = _env().get_template(template).render({**base, **context})
    return HTMLResponse(html, status_code, headers=SECURITY_HEADERS)


async def _last_seq(services: Services) -> int:
    last = await services.store.last_event()
    return last.seq if last else 0


@dataclass
class _AuditCheck:
    """How far this app has verified the hash chain, and what it found."""

    checked: int = 0
    last_hash: str = GENESIS_HASH
    first_bad_seq: int | None = None
    reason: str | None = None
    full_at: float = float("-inf")

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.first_bad_seq is None, "checked": self.checked,
                "first_bad_seq": self.first_bad_seq, "reason": self.reason}


async def _audit(request: Request, services: Services) -> dict[str, Any]:
    """The audit-chain status for the dashboard, without re-walking the log on every render.

    A full walk (what GET /audit/verify does) runs at most every FULL_AUDIT_S; in between, only
    the events appended since the last check are verified against the last verified hash.
    """
    state = request.app.state
    check: _AuditCheck | None = getattr(state, "web_audit", None)
    lock: asyncio.Lock | None = getattr(state, "web_audit_lock", None)
    if check is None or lock is None:
        check = state.web_audit = _AuditCheck()
        lock = state.web_audit_lock = asyncio.Lock()
    store = services.store
    async with lock:
        if time.monotonic() - check.full_at >= FULL_AUDIT_S:
            result = await store.verify()
            brk = result.first_break
            check.checked, check.full_at = result.checked, time.monotonic()
            check.first_bad_seq, check.reason = (brk.seq, brk.reason) if brk else (None, None)
            tail = await store.list_events(since_seq=max(0, result.checked - 1), limit=1)
            check.last_hash = tail[0].hash if result.checked and tail else GENESIS_HASH
        while check.first_bad_seq is None:
            new = await store.list_events(since_seq=check.checked, limit=AUDIT_BATCH)
            brk = verify_chain(new, check.last_hash, check.checked + 1)
            if brk is not None:
                check.first_bad_seq, check.reason = brk.seq, brk.reason
                break
            if new:
                check.checked, check.last_hash = new[-1].seq, new[-1].hash
            if len(new) < AUDIT_BATCH:
                break
        return check.as_dict()


async def dashboard_page(request: Request, services: Services,
                         build_status: Callable[[Services], Awaitable[StatusOut]]
                         ) -> HTMLResponse:
    store = services.store
    last_seq = await _last_seq(services)  # first: anything later arrives over /events
    status = (await build_status(services)).model_dump(mode="json")
    open_items = [*(await store.list_incidents(status="escalated", limit=50)).items,
                  *(await store.list_incidents(status="open", limit=50)).items]
    open_items.sort(key=lambda i: str(i["opened_at"]), reverse=True)
    incidents = []
    for inc in open_items:
        alerts = await store.incident_alerts(inc["id"], limit=200)
        acts = await store.list_actions(incident_id=inc["id"], limit=20)
        chat = chat_links(await store.list_events(
            incident_id=inc["id"], types=[EventType.NOTIFICATION_DELIVERED], limit=1_000))
        incidents.append(views.incident_row(inc, alerts, acts, chat))
    resolved = [views.incident_row(i) for i in
                (await store.list_incidents(status="resolved", limit=8)).items]
    pending_rows = await store.list_actions(status="pending_approval", limit=100)
    pending = [action_view.action_row(a) for a in pending_rows]
    deadlines = await operator_view.deadlines_of(
        store, [str(a["incident_id"]) for a in pending_rows])
    audit = await _audit(request, services)
    audit_badge, audit_detail = views.audit_badge(audit)
    context = {
        "s": status, "modes": views.MODES, "control": views.control_badge(status["paused"]),
        "uptime": views.fmt_duration(status["uptime_s"]),
        "last_alert": views.fmt_time(status["last_alert_at"]),
        "components": views.component_rows(status),
        "replicas": replica_view.replica_rows(status),
        "incidents": incidents, "resolved": resolved, "pending": pending,
        "unresolved": unresolved_count(status["incidents"]),
        "actions": [action_view.action_row(a) for a in await store.list_actions(limit=15)],
        "effectiveness": action_view.effectiveness_rows(status["effectiveness"]),
        "breakers": action_view.breaker_rows(await store.list_breakers()),
        "audit": audit_badge, "audit_detail": audit_detail, "last_seq": last_seq,
        "pause": await operator_view.pause_state(store),
        "countdowns": operator_view.countdowns(deadlines, time.time()),
    }
    return render(request, "dashboard.html", context, page="dashboard")


async def incident_page(request: Request, services: Services, incident_id: str, *,
                        alerts_offset: int = 0, alerts_limit: int = 100
                        ) -> HTMLResponse | None:
    """The incident's page, or None when there is no such incident. One page of alerts; the
    timeline folds long runs of received alerts."""
    store = services.store
    last_seq = await _last_seq(services)
    incident = await store.get_incident(incident_id)
    if incident is None:
        return None
    alerts = await store.incident_alerts(incident_id, offset=alerts_offset, limit=alerts_limit)
    actions = await store.list_actions(incident_id=incident_id, limit=500)
    actions.sort(key=lambda a: str(a["proposed_at"]))
    events = await store.list_events(incident_id=incident_id, limit=100_000)
    recover = views.seconds_between(incident.get("opened_at"), incident.get("resolved_at"))
    context = {
        "inc": views.incident_row(incident, alerts, actions),
        "resolved": views.fmt_time(incident.get("resolved_at")) if incident.get("resolved_at")
        else "not yet",
        "recover": views.fmt_duration(recover) if recover is not None else "not recovered yet",
        "group_key": views.clip(incident.get("group_key"), 500),
        "dx": incident_view.diagnosis_view(incident.get("diagnosis")),
        "actions": [action_view.action_row(a) for a in actions],
        "alerts": incident_view.alert_rows(alerts), "events": incident_view.timeline(events),
        "chat": sorted(chat_links(events).items()),
        "events_total": len(events),
        "alerts_page": operator_view.page_links(alerts_offset, alerts_limit, len(alerts),
                                        int(incident.get("alerts_total") or 0)),
        "last_seq": last_seq, "incident_id": incident_id,
        "owner": ownership(events), "pause": await operator_view.pause_state(store),
        "evidence": evidence_view.evidence_items(events),
        "countdowns": operator_view.countdowns(incident_view.approval_deadlines(events),
                                             time.time()),
        "is_resolved": incident.get("status") == IncidentStatus.RESOLVED,
        "can_silence": ActionKind.SILENCE_ALERT in services.backends,
        "silence_choices": operator_view.SILENCE_CHOICES,
    }
    return render(request, "incident.html", context, page="incident")


# --- login / logout -----------------------------------------------------------------------------
def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle | None = getattr(request.app.state, "web_login_throttle", None)
    if throttle is None:
        throttle = request.app.state.web_login_throttle = LoginThrottle()
    return throttle


async def _read_form(request: Request) -> dict[str, str]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != "application/x-www-form-urlencoded":
        return {}
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return {}
    parsed = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    return {k: v[0] for k, v in parsed.items() if v}


def _login_form(request: Request, next_path: str, error: str = "",
                status_code: int = 200) -> HTMLResponse:
    return render(request, "login.html", {"next": next_path, "error": error},
                  status_code=status_code, page="login", show_nav=False)


@router.get("/", response_class=RedirectResponse)
async def root() -> RedirectResponse:
    return RedirectResponse("/status", status_code=303)


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, next: str = "/status") -> Response:
    """The login form; straight on when no operator token is set or already logged in."""
    target = safe_next(next)
    if session_signer(request) is None or current_session(request) is not None:
        return RedirectResponse(target, status_code=303)
    return _login_form(request, target)


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Trade the operator token for an HttpOnly, SameSite=Strict session cookie."""
    signer = session_signer(request)
    form = await _read_form(request)
    target = safe_next(form.get("next"))
    if signer is None:
        return RedirectResponse(target, status_code=303)
    if cross_site_request(request.headers, request.headers.get("host")):
        return _login_form(request, target, "Cross-site login refused.", 403)
    throttle = _throttle(request)
    client = request.client.host if request.client else "unknown"
    if throttle.blocked(client):
        return _login_form(request, target, "Too many failed attempts; wait a few minutes.",
                           429)
    services: Services = request.app.state.services
    if not operator_token_matches(services.settings, form.get("token", "")):
        throttle.failed(client)
        return _login_form(request, target, "That is not the operator token.", 401)
    throttle.succeeded(client)
    cookie, _session = signer.issue(form.get("name", ""))
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE_NAME, cookie, max_age=int(signer.ttl_s), path="/",
                        httponly=True, samesite="strict",
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    """End the browser session (the form carries the CSRF token)."""
    signer = session_signer(request)
    session = current_session(request)
    if signer is not None and session is not None:
        form = await _read_form(request)
        token = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD)
        if not signer.csrf_valid(session, token):
            return Response("missing or invalid CSRF token", 403, media_type="text/plain")
        signer.revoke(session)
    response = RedirectResponse("/login" if signer is not None else "/status", status_code=303)
    response.delete_cookie(COOKIE_NAME, path="/", httponly=True, samesite="strict",
                           secure=request.url.scheme == "https")
    return response
