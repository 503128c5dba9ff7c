"""Incidents: list with filters and a cursor, and one with its alerts and full timeline."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from sre_agent.api.deps import ContainerDep, OperatorDep
from sre_agent.api.schemas import AlertOut, ErrorOut, EventOut, IncidentDetail, IncidentList
from sre_agent.domain.incident import IncidentStatus

router = APIRouter(prefix="/incidents", tags=["incidents"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})


@router.get("", response_model=IncidentList)
async def list_incidents(
    container: ContainerDep,
    status: IncidentStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[int | None, Query(ge=0, description="next_cursor of the previous page")]
    = None,
) -> dict[str, Any]:
    """Incidents, newest first."""
    page = await container.store.list_incidents(status=status, limit=limit, cursor=cursor)
    return {"items": page.items, "next_cursor": page.next_cursor}


@router.get("/{incident_id}", response_model=IncidentDetail,
            responses={404: {"model": ErrorOut}})
async def get_incident(incident_id: str, container: ContainerDep) -> dict[str, Any]:
    """One incident with its alerts and every event in its timeline."""
    incident = await container.store.get_incident(incident_id)
    if incident is None:
        raise HTTPException(404, f"incident {incident_id!r} not found")
    alerts = await container.store.incident_alerts(incident_id)
    events = await container.store.list_events(incident_id=incident_id, limit=100_000)
    return {**incident, "alerts": [AlertOut.model_validate(a) for a in alerts],
            "events": [EventOut(**e.as_dict()) for e in events]}
