"""Actions: the list (pending approvals first of all), approve and reject."""

from __future__ import annotations

import time
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from sre_agent.api.deps import ContainerDep, OperatorActor, OperatorDep
from sre_agent.api.schemas import ActionOut, DecisionIn, ErrorOut
from sre_agent.domain.actions import ActionStatus
from sre_agent.domain.events import EventType, NewEvent

router = APIRouter(prefix="/actions", tags=["actions"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})
PENDING = frozenset({ActionStatus.PENDING_APPROVAL})


@router.get("", response_model=list[ActionOut])
async def list_actions(
    container: ContainerDep, status: ActionStatus | None = None,
    incident: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Actions, most recently changed first; ``status=pending_approval`` for the queue."""
    return await container.store.list_actions(status=status, incident_id=incident, limit=limit)


async def _decide(action_id: str, container: ContainerDep, actor: str, approve: bool,
                  comment: str) -> dict[str, Any]:
    store = container.store
    row = await store.get_action(action_id)
    if row is None:
        raise HTTPException(404, f"action {action_id!r} not found")
    if row["status"] != ActionStatus.PENDING_APPROVAL:
        raise HTTPException(409, f"action {action_id} is {row['status']}, not pending approval")
    incident_id = row["incident_id"]
    if time.time() - float(row["updated_ts"]) > container.policy.approval_ttl_s:
        await store.append_guarded(action_id, PENDING, [NewEvent(
            EventType.ACTION_EXPIRED, actor, incident_id,
            {"action_id": action_id, "reason": "approval window passed"})])
        raise HTTPException(409, f"action {action_id} expired: its approval window passed")
    event_type = EventType.ACTION_APPROVED if approve else EventType.ACTION_REJECTED
    stored = await store.append_guarded(action_id, PENDING, [NewEvent(
        event_type, actor, incident_id, {"action_id": action_id, "reason": comment})])
    if stored is None:
        raise HTTPException(409, f"action {action_id} was decided by someone else meanwhile")
    if approve:
        container.runner.submit(incident_id)
    updated = await store.get_action(action_id)
    assert updated is not None
    return updated


@router.post("/{action_id}/approve", response_model=ActionOut,
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
async def approve(action_id: str, container: ContainerDep, actor: OperatorActor,
                  body: DecisionIn | None = None) -> dict[str, Any]:
    """Approve a pending action; the gate checks it again before it runs."""
    return await _decide(action_id, container, actor, True, body.comment if body else "")


@router.post("/{action_id}/reject", response_model=ActionOut,
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
async def reject(action_id: str, container: ContainerDep, actor: OperatorActor,
                 body: DecisionIn | None = None) -> dict[str, Any]:
    """Reject a pending action; it never runs."""
    return await _decide(action_id, container, actor, False, body.comment if body else "")
