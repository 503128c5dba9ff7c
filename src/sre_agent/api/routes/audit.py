"""The audit trail: the event log itself, and a walk over its hash chain."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from sre_agent.api.deps import OperatorDep, StoreDep
from sre_agent.api.schemas import AuditList, ErrorOut, VerifyOut

router = APIRouter(prefix="/audit", tags=["audit"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})


@router.get("", response_model=AuditList)
async def list_audit(
    store: StoreDep,
    incident: str | None = None,
    type: Annotated[list[str] | None, Query(description="event types, repeatable")] = None,
    since_seq: Annotated[int, Query(ge=0, le=2**62)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Events in log order, filtered by incident, type and position."""
    items = await store.list_events(incident_id=incident, types=type,
                                              since_seq=since_seq, limit=limit)
    return {"items": [e.as_dict() for e in items],
            "next_since_seq": items[-1].seq if len(items) == limit else None}


@router.get("/verify", response_model=VerifyOut)
async def verify_audit(store: StoreDep) -> VerifyOut:
    """Walk the whole hash chain; names the first bad seq when it is broken."""
    result = await store.verify()
    brk = result.first_break
    return VerifyOut(ok=result.ok, checked=result.checked,
                     first_bad_seq=brk.seq if brk else None, reason=brk.reason if brk else None)
