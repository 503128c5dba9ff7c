"""Operator control: mode and the kill switch. Every change is a command, recorded as an event
with the operator."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from sre_agent.api.deps import CommandsDep, CurrentOperator, OperatorDep, StoreDep
from sre_agent.api.schemas import BreakerOut, ControlIn, ControlOut, ErrorOut, ReasonIn
from sre_agent.pipeline.commands import (
    ControlResult,
    NotFound,
    Pause,
    ResetBreaker,
    Resume,
    SetMode,
)

router = APIRouter(prefix="/control", tags=["control"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})


async def _control(commands: CommandsDep, command: SetMode | Pause | Resume) -> ControlOut:
    result: ControlResult = await commands.handle(command)
    return ControlOut(mode=result.state.mode, paused=result.state.paused, seq=result.seq)


@router.post("/mode", response_model=ControlOut)
async def set_mode(body: ControlIn, commands: CommandsDep, actor: CurrentOperator) -> ControlOut:
    """Switch between observe, dry_run, approval and autonomous."""
    return await _control(commands, SetMode(body.mode, actor, body.reason))


@router.post("/pause", response_model=ControlOut)
async def pause(commands: CommandsDep, actor: CurrentOperator,
                body: ReasonIn | None = None) -> ControlOut:
    """Kill switch: no action runs until resumed."""
    return await _control(commands, Pause(actor, body.reason if body else ""))


@router.post("/resume", response_model=ControlOut)
async def resume(commands: CommandsDep, actor: CurrentOperator,
                 body: ReasonIn | None = None) -> ControlOut:
    """Lift the kill switch."""
    return await _control(commands, Resume(actor, body.reason if body else ""))


@router.get("/breakers", response_model=list[BreakerOut])
async def list_breakers(store: StoreDep) -> list[dict[str, str]]:
    """Circuit breakers per target, open ones needing an operator reset."""
    return await store.list_breakers()


@router.post("/breaker/{target}/reset", response_model=BreakerOut,
             responses={404: {"model": ErrorOut}})
async def reset_breaker(target: str, commands: CommandsDep, actor: CurrentOperator,
                        body: ReasonIn | None = None) -> dict[str, Any]:
    """Close a tripped circuit breaker so actions on the target may run again."""
    try:
        result: dict[str, Any] = await commands.handle(
            ResetBreaker(target, actor, body.reason if body else ""))
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from exc
    return result
