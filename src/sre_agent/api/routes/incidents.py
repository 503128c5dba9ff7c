"""Incidents: list with filters and a cursor, one with its alerts and full timeline, a report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from sre_agent.api.deps import CommandsDep, CurrentOperator, OperatorDep, ServicesDep, StoreDep
from sre_agent.api.routes.web import incident_page
from sre_agent.api.schemas import (
    AckIn,
    AlertOut,
    AssignIn,
    ErrorOut,
    EventOut,
    IncidentCommandOut,
    IncidentDetail,
    IncidentList,
    NoteIn,
    ResolveIn,
    SilenceIn,
)
from sre_agent.domain.events import EventType
from sre_agent.domain.incident import IncidentStatus
from sre_agent.domain.notifications import chat_links
from sre_agent.domain.ownership import OWNERSHIP_EVENTS, ownership
from sre_agent.pipeline.commands import (
    Acknowledge,
    AddNote,
    Assign,
    CommandRejected,
    NotFound,
    ResolveIncident,
    SilenceAlert,
    Unavailable,
)
from sre_agent.pipeline.incident_commands import IncidentCommand, IncidentCommandResult
from sre_agent.web import prefers_html
from sre_agent.web.report import build_report
from sre_agent.web.views import now_iso

ALERTS_PAGE = 100
EVENTS_PAGE = 200
MAX_PAGE = 1000

router = APIRouter(prefix="/incidents", tags=["incidents"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})


@router.get("", response_model=IncidentList)
async def list_incidents(
    store: StoreDep,
    status: IncidentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[int | None, Query(ge=0, le=2**62,
                                        description="next_cursor of the previous page")]
    = None,
) -> dict[str, Any]:
    """Incidents, newest first."""
    page = await store.list_incidents(status=status, limit=limit, cursor=cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{incident_id}", response_model=IncidentDetail, responses={
    200: {"content": {"text/html": {"schema": {"type": "string"}}},
          "description": "JSON for programs; the incident page for `Accept: text/html`"},
    404: {"model": ErrorOut}})
async def get_incident(
    incident_id: str, request: Request, services: ServicesDep,
    alerts_offset: Annotated[int, Query(ge=0, le=2**31, description="alerts to skip")] = 0,
    alerts_limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="alerts per page")]
    = ALERTS_PAGE,
    events_since: Annotated[int, Query(ge=0, le=2**62, description=(
        "only events after this seq: `events_next_since` of the previous page"))] = 0,
    events_limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="events per page")]
    = EVENTS_PAGE,
) -> dict[str, Any] | Response:
    """One incident with a page of its alerts and a page of its timeline (both bounded, so a
    5,000-alert incident stays small); the counts say how many there are in all."""
    if prefers_html(request.headers.get("accept")):
        page = await incident_page(request, services, incident_id,
                                   alerts_offset=alerts_offset, alerts_limit=alerts_limit)
        if page is None:
            raise HTTPException(404, f"incident {incident_id!r} not found")
        return page
    store = services.store
    incident = await store.get_incident(incident_id)
    if incident is None:
        raise HTTPException(404, f"incident {incident_id!r} not found")
    alerts = await store.incident_alerts(incident_id, offset=alerts_offset, limit=alerts_limit)
    events = await store.list_events(incident_id=incident_id, since_seq=events_since,
                                     limit=events_limit + 1)
    more = len(events) > events_limit
    events = events[:events_limit]
    owner = ownership(await store.list_events(incident_id=incident_id,
                                              types=list(OWNERSHIP_EVENTS), limit=10_000))
    return {**incident, "acknowledged_by": owner.acknowledged_by,
            "acknowledged_at": owner.acknowledged_at, "assignee": owner.assignee,
            "alerts": [AlertOut.model_validate(a) for a in alerts],
            "alerts_offset": alerts_offset, "alerts_limit": alerts_limit,
            "events": [EventOut(**e.as_dict()) for e in events],
            "events_total": await store.count_events(incident_id),
            "events_next_since": events[-1].seq if more else None,
            "chat": chat_links(await store.list_events(
                incident_id=incident_id, types=[EventType.NOTIFICATION_DELIVERED],
                limit=10_000))}


@router.get("/{incident_id}/report", response_class=Response, responses={
    200: {"content": {"text/markdown": {"schema": {"type": "string"}}},
          "description": "Markdown post-incident report, as an attachment `<id>.md`"},
    404: {"model": ErrorOut}})
async def get_report(incident_id: str, store: StoreDep) -> Response:
    """A Markdown post-incident report built from the incident's events: summary, timeline,
    diagnosis, actions and outcomes, time to recover, and the audit hashes."""
    if await store.get_incident(incident_id) is None:
        raise HTTPException(404, f"incident {incident_id!r} not found")
    events = await store.list_events(incident_id=incident_id, limit=100_000)
    text = build_report(events, generated_at=now_iso())
    filename = "".join(c for c in incident_id if c.isalnum() or c in "-_")[:80] or "incident"
    return Response(text, media_type="text/markdown; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{filename}.md"',
        "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})


# --- operator commands on the incident ---------------------------------------------------------
COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "no such incident"},
    409: {"model": ErrorOut, "description": "the incident's state does not allow it"}}


async def _incident_command(commands: CommandsDep, command: IncidentCommand) -> dict[str, Any]:
    try:
        result: IncidentCommandResult = await commands.handle(command)
    except CommandRejected as exc:
        code = 404 if isinstance(exc, NotFound) else 502 if isinstance(exc, Unavailable) else 409
        raise HTTPException(code, str(exc)) from exc
    return {"incident": result.incident, "event": EventOut(**result.event.as_dict())}


@router.post("/{incident_id}/ack", response_model=IncidentCommandOut, responses=COMMAND_ERRORS)
async def acknowledge(incident_id: str, commands: CommandsDep, actor: CurrentOperator,
                      body: AckIn | None = None) -> dict[str, Any]:
    """Acknowledge the incident: you are on it (IncidentAcknowledged, once per incident)."""
    return await _incident_command(
        commands, Acknowledge(incident_id, actor, body.comment if body else ""))


@router.post("/{incident_id}/assign", response_model=IncidentCommandOut,
             responses=COMMAND_ERRORS)
async def assign(incident_id: str, body: AssignIn, commands: CommandsDep,
                 actor: CurrentOperator) -> dict[str, Any]:
    """Assign the incident to someone (IncidentAssigned); the last assignment wins."""
    return await _incident_command(
        commands, Assign(incident_id, body.assignee, actor, body.comment))


@router.post("/{incident_id}/note", response_model=IncidentCommandOut,
             responses=COMMAND_ERRORS)
async def add_note(incident_id: str, body: NoteIn, commands: CommandsDep,
                   actor: CurrentOperator) -> dict[str, Any]:
    """Add a note to the incident's timeline (NoteAdded); shown on the page and the report."""
    return await _incident_command(commands, AddNote(incident_id, body.text.strip(), actor))


@router.post("/{incident_id}/resolve", response_model=IncidentCommandOut,
             responses=COMMAND_ERRORS)
async def resolve(incident_id: str, commands: CommandsDep, actor: CurrentOperator,
                  body: ResolveIn | None = None) -> dict[str, Any]:
    """Resolve the incident by hand (IncidentResolved, ``manual: true``); its pending
    approvals expire."""
    return await _incident_command(
        commands, ResolveIncident(incident_id, actor, body.reason if body else ""))


@router.post("/{incident_id}/silence", response_model=IncidentCommandOut, responses={
    **COMMAND_ERRORS, 409: {"model": ErrorOut, "description": "no Alertmanager configured"},
    502: {"model": ErrorOut, "description": "Alertmanager refused or was unreachable"}})
async def silence(incident_id: str, body: SilenceIn, commands: CommandsDep,
                  actor: CurrentOperator) -> dict[str, Any]:
    """Silence the incident's alert in Alertmanager for ``duration_s`` (AlertSilenced): the
    silence matches the labels the incident's alerts share."""
    return await _incident_command(
        commands, SilenceAlert(incident_id, body.duration_s, actor, body.comment))
