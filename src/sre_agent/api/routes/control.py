"""Operator control: mode and the kill switch. Every change is an event with the operator."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from sre_agent.api.deps import ContainerDep, OperatorActor, OperatorDep
from sre_agent.api.schemas import BreakerOut, ControlIn, ControlOut, ErrorOut, ReasonIn
from sre_agent.domain.control import effective_control
from sre_agent.domain.events import EventType, NewEvent

router = APIRouter(prefix="/control", tags=["control"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})


async def _record(container: ContainerDep, event: NewEvent) -> ControlOut:
    stored = await container.store.append([event])
    state = effective_control(await container.store.control_state(), container.settings.mode)
    return ControlOut(mode=state.mode, paused=state.paused, seq=stored[0].seq)


@router.post("/mode", response_model=ControlOut)
async def set_mode(body: ControlIn, container: ContainerDep, actor: OperatorActor) -> ControlOut:
    """Switch between observe, dry_run, approval and autonomous."""
    return await _record(container, NewEvent(EventType.MODE_CHANGED, actor, None,
                                             {"mode": body.mode.value, "reason": body.reason}))


@router.post("/pause", response_model=ControlOut)
async def pause(container: ContainerDep, actor: OperatorActor,
                body: ReasonIn | None = None) -> ControlOut:
    """Kill switch: no action runs until resumed."""
    reason = body.reason if body else ""
    return await _record(container, NewEvent(EventType.PAUSED, actor, None, {"reason": reason}))


@router.post("/resume", response_model=ControlOut)
async def resume(container: ContainerDep, actor: OperatorActor,
                 body: ReasonIn | None = None) -> ControlOut:
    """Lift the kill switch."""
    reason = body.reason if body else ""
    return await _record(container, NewEvent(EventType.RESUMED, actor, None, {"reason": reason}))


@router.get("/breakers", response_model=list[BreakerOut])
async def list_breakers(container: ContainerDep) -> list[dict[str, str]]:
    """Circuit breakers per target, open ones needing an operator reset."""
    return await container.store.list_breakers()


@router.post("/breaker/{target}/reset", response_model=BreakerOut,
             responses={404: {"model": ErrorOut}})
async def reset_breaker(target: str, container: ContainerDep, actor: OperatorActor,
                        body: ReasonIn | None = None) -> dict[str, str]:
    """Close a tripped circuit breaker so actions on the target may run again."""
    breakers = {b["target"]: b for b in await container.store.list_breakers()}
    if breakers.get(target, {}).get("state") != "open":
        raise HTTPException(404, f"no open circuit breaker for {target!r}")
    await container.store.append([NewEvent(EventType.BREAKER_RESET, actor, None, {
        "target": target, "reason": body.reason if body else ""})])
    return {b["target"]: b for b in await container.store.list_breakers()}[target]
