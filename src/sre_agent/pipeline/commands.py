"""Operator commands: approve, reject, retry, reset a breaker, set the mode, pause, resume;
and on an incident (``incident_commands.py``): acknowledge, assign, note, resolve, silence.

Every operator change goes through ``CommandBus.handle``, never through a route writing to the
store: one command dataclass each, one handler each, errors as ``CommandRejected`` (the API
maps ``NotFound`` to 404 and ``Conflict`` to 409).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sre_agent.domain.actions import PENDING, ActionStatus
from sre_agent.domain.control import ControlState, effective_control
from sre_agent.domain.events import EventType, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import IncidentStatus, Mode
from sre_agent.domain.policy import Policy, ReasonCode
from sre_agent.pipeline.command_errors import CommandRejected, Conflict, NotFound, Unavailable
from sre_agent.pipeline.handlers.gate import expire_if_stale
from sre_agent.pipeline.incident_commands import (
    Acknowledge,
    AddNote,
    Assign,
    IncidentCommands,
    ResolveIncident,
    SilenceAlert,
)
from sre_agent.pipeline.reproposal import again, blocked_since, last_seq_of
from sre_agent.ports import ActionBackend, EventStore

__all__ = [
    "Acknowledge",
    "AddNote",
    "Assign",
    "CommandRejected",
    "Conflict",
    "NotFound",
    "ResolveIncident",
    "SilenceAlert",
    "Unavailable",
]


@dataclass(frozen=True)
class Approve:
    action_id: str
    actor: str
    comment: str = ""


@dataclass(frozen=True)
class Reject:
    action_id: str
    actor: str
    comment: str = ""


@dataclass(frozen=True)
class Retry:
    """Propose a finished action again (rejected, expired, blocked, failed): a new action
    that goes through the gate, on an incident that is still open."""

    action_id: str
    actor: str
    comment: str = ""


@dataclass(frozen=True)
class ResetBreaker:
    target: str
    actor: str
    reason: str = ""


@dataclass(frozen=True)
class SetMode:
    mode: Mode
    actor: str
    reason: str = ""


@dataclass(frozen=True)
class Pause:
    actor: str
    reason: str = ""


@dataclass(frozen=True)
class Resume:
    actor: str
    reason: str = ""


Command = (Approve | Reject | Retry | ResetBreaker | SetMode | Pause | Resume
           | Acknowledge | Assign | AddNote | ResolveIncident | SilenceAlert)
# What an operator may propose again: outcomes that ran nothing, or did not help.
RETRYABLE = frozenset({ActionStatus.REJECTED, ActionStatus.EXPIRED, ActionStatus.BLOCKED,
                       ActionStatus.DRY_RUN, ActionStatus.FAILED,
                       ActionStatus.VERIFICATION_FAILED, ActionStatus.VERIFICATION_INCONCLUSIVE})


@dataclass(frozen=True)
class ControlResult:
    state: ControlState
    seq: int


class CommandBus:
    def __init__(self, store: EventStore, policy: Policy, *, default_mode: Mode,
                 submit: Callable[[str], None],
                 clock: Callable[[], float] = time.time,
                 silencer: ActionBackend | None = None) -> None:
        self.store = store
        self.policy = policy
        self.default_mode = default_mode
        self.submit = submit  # hands an incident to the pipeline (the runner)
        self.clock = clock
        self._handlers: dict[type, Callable[[Any], Awaitable[Any]]] = {
            Approve: self._decide, Reject: self._decide, Retry: self._retry,
            ResetBreaker: self._reset_breaker,
            SetMode: self._control, Pause: self._control, Resume: self._control,
        }
        incidents = IncidentCommands(store, submit, silencer, clock)
        for kind in (Acknowledge, Assign, AddNote, ResolveIncident, SilenceAlert):
            self._handlers[kind] = incidents.handle

    async def handle(self, command: Command) -> Any:
        return await self._handlers[type(command)](command)

    # --- approvals ----------------------------------------------------------------------------
    async def _decide(self, cmd: Approve | Reject) -> dict[str, Any]:
        """Approve or reject a pending action; the gate checks an approved one again."""
        store, aid = self.store, cmd.action_id
        row = await store.get_action(aid)
        if row is None:
            raise NotFound(f"action {aid!r} not found")
        if row["status"] != ActionStatus.PENDING_APPROVAL:
            raise Conflict(f"action {aid} is {row['status']}, not pending approval")
        incident = await store.get_incident(str(row["incident_id"]))
        resolved = incident is not None and incident["status"] == IncidentStatus.RESOLVED
        if await expire_if_stale(store, row, self.policy, self.clock(), cmd.actor,
                                 incident_resolved=resolved) is not None:
            raise Conflict(f"action {aid} expired: "
                           + ("its incident is resolved" if resolved
                              else "its approval window passed"))
        payload = (ev.ActionApproved(action_id=aid, reason=cmd.comment)
                   if isinstance(cmd, Approve)
                   else ev.ActionRejected(action_id=aid, reason=cmd.comment))
        stored = await store.append_guarded(aid, PENDING, [NewEvent.of(
            payload, cmd.actor, row["incident_id"])])
        if stored is None:
            raise Conflict(f"action {aid} was decided by someone else meanwhile")
        if isinstance(cmd, Approve):
            self.submit(row["incident_id"])
        updated = await store.get_action(aid)
        assert updated is not None
        return updated

    async def _retry(self, cmd: Retry) -> dict[str, Any]:
        store, aid = self.store, cmd.action_id
        row = await store.get_action(aid)
        if row is None:
            raise NotFound(f"action {aid!r} not found")
        if row["status"] not in RETRYABLE:
            raise Conflict(f"action {aid} is {row['status']}: only a rejected, expired, "
                           "blocked or failed action can be proposed again")
        incident = await store.get_incident(str(row["incident_id"]))
        if incident is None or incident["status"] == IncidentStatus.RESOLVED:
            raise Conflict(f"incident {row['incident_id']} is resolved: nothing to fix")
        why = f"proposed again by {cmd.actor}" + (f" ({cmd.comment})" if cmd.comment else "")
        [stored] = await store.append([again(row, cmd.actor, why)])
        self.submit(str(row["incident_id"]))
        new_id = getattr(stored.payload, "action_id", "")
        created = await store.get_action(new_id)
        assert created is not None
        return created

    async def _repropose(self, blocked: list[dict[str, Any]], actor: str, why: str) -> None:
        """Propose again what a lifted block had refused, and hand the incidents on."""
        if not blocked:
            return
        await self.store.append([again(row, actor, why) for row in blocked])
        for incident_id in dict.fromkeys(str(r["incident_id"]) for r in blocked):
            self.submit(incident_id)

    # --- breakers and control -------------------------------------------------------------------
    async def _reset_breaker(self, cmd: ResetBreaker) -> dict[str, Any]:
        breakers = {b["target"]: b for b in await self.store.list_breakers()}
        if breakers.get(cmd.target, {}).get("state") != "open":
            raise NotFound(f"no open circuit breaker for {cmd.target!r}")
        tripped = await last_seq_of(self.store, EventType.BREAKER_TRIPPED, cmd.target)
        await self.store.append([NewEvent.of(ev.BreakerReset(target=cmd.target,
                                                            reason=cmd.reason), cmd.actor)])
        await self._repropose(
            await blocked_since(self.store, tripped, ReasonCode.BREAKER_OPEN, cmd.target),
            cmd.actor, f"breaker for {cmd.target} reset")
        return {b["target"]: b for b in await self.store.list_breakers()}[cmd.target]

    async def _control(self, cmd: SetMode | Pause | Resume) -> ControlResult:
        payload: ev.EventPayload
        if isinstance(cmd, SetMode):
            payload = ev.ModeChanged(mode=cmd.mode.value, reason=cmd.reason)
        elif isinstance(cmd, Pause):
            payload = ev.Paused(reason=cmd.reason)
        else:
            payload = ev.Resumed(reason=cmd.reason)
        paused_at = (await last_seq_of(self.store, EventType.PAUSED)
                     if isinstance(cmd, Resume) else 0)
        stored = await self.store.append([NewEvent.of(payload, cmd.actor)])
        if isinstance(cmd, Resume) and paused_at:
            await self._repropose(
                await blocked_since(self.store, paused_at, ReasonCode.PAUSED),
                cmd.actor, "actions resumed")
        state = effective_control(await self.store.control_state(), self.default_mode)
        return ControlResult(state, stored[0].seq)
