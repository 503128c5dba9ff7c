"""Actions: the list (pending approvals first of all), approve, reject and retry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from sre_agent.api.deps import CommandsDep, CurrentOperator, OperatorDep, StoreDep
from sre_agent.api.schemas import ActionOut, DecisionIn, ErrorOut
from sre_agent.domain.actions import ActionStatus
from sre_agent.pipeline.commands import Approve, CommandRejected, NotFound, Reject, Retry

router = APIRouter(prefix="/actions", tags=["actions"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})


@router.get("", response_model=list[ActionOut])
async def list_actions(
    store: StoreDep, status: ActionStatus | None = None,
    incident: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Actions, most recently changed first; ``status=pending_approval`` for the queue."""
    return await store.list_actions(status=status, incident_id=incident, limit=limit)


async def run_command(commands: CommandsDep, command: Approve | Reject | Retry
                      ) -> dict[str, Any]:
    try:
        result: dict[str, Any] = await commands.handle(command)
    except CommandRejected as exc:
        raise HTTPException(404 if isinstance(exc, NotFound) else 409, str(exc)) from exc
    return result


@router.post("/{action_id}/approve", response_model=ActionOut,
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
async def approve(action_id: str, commands: CommandsDep, actor: CurrentOperator,
                  body: DecisionIn | None = None) -> dict[str, Any]:
    """Approve a pending action; the gate checks it again before it runs."""
    return await run_command(commands, Approve(action_id, actor, body.comment if body else ""))


@router.post("/{action_id}/reject", response_model=ActionOut,
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
async def reject(action_id: str, commands: CommandsDep, actor: CurrentOperator,
                 body: DecisionIn | None = None) -> dict[str, Any]:
    """Reject a pending action; it never runs."""
    return await run_command(commands, Reject(action_id, actor, body.comment if body else ""))


@router.post("/{action_id}/retry", response_model=ActionOut,
             responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}})
async def retry(action_id: str, commands: CommandsDep, actor: CurrentOperator,
                body: DecisionIn | None = None) -> dict[str, Any]:
    """Propose a rejected, expired, blocked or failed action again, as a new action that
    goes through the gate (on an incident that is still open); answers the new action."""
    return await run_command(commands, Retry(action_id, actor, body.comment if body else ""))
