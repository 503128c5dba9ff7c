"""Operator commands on an incident: acknowledge, assign, add a note, resolve, silence.

Each appends one typed event with the operator as actor (IncidentAcknowledged,
IncidentAssigned, NoteAdded, IncidentResolved with ``manual``, AlertSilenced). Ownership
(acknowledged by, assignee) is derived from the log (``domain/ownership.py``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import NewEvent, StoredEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import IncidentStatus
from sre_agent.domain.ownership import OWNERSHIP_EVENTS, Ownership, ownership
from sre_agent.domain.results import ActionRequest
from sre_agent.pipeline.command_errors import Conflict, NotFound, Unavailable
from sre_agent.ports import ActionBackend, EventStore


@dataclass(frozen=True)
class Acknowledge:
    incident_id: str
    actor: str
    comment: str = ""


@dataclass(frozen=True)
class Assign:
    incident_id: str
    assignee: str
    actor: str
    comment: str = ""


@dataclass(frozen=True)
class AddNote:
    incident_id: str
    text: str
    actor: str


@dataclass(frozen=True)
class ResolveIncident:
    incident_id: str
    actor: str
    reason: str = ""


@dataclass(frozen=True)
class SilenceAlert:
    incident_id: str
    duration_s: int
    actor: str
    comment: str = ""


IncidentCommand = Acknowledge | Assign | AddNote | ResolveIncident | SilenceAlert


# How often a command is decided again when the incident's log moved under it.
_ATTEMPTS = 8


@dataclass(frozen=True)
class IncidentCommandResult:
    incident: dict[str, Any]
    event: StoredEvent


class IncidentCommands:
    """The handlers; ``CommandBus`` routes the commands above here."""

    def __init__(self, store: EventStore, submit: Callable[[str], None],
                 silencer: ActionBackend | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.submit = submit
        self.silencer = silencer
        self.clock = clock

    async def handle(self, cmd: IncidentCommand) -> IncidentCommandResult:
        """Decide on what was read, then append only if the incident's log has not moved since
        (``append_expecting``): two operators acknowledging or resolving at once, on one
        replica or two, give one event and one 409, never two events. A log that moved (the
        pipeline appended meanwhile) is read again and the command decided again. A note and
        a silence depend on no state (and a silence, once created in Alertmanager, is
        recorded whatever happened meanwhile): they append plainly."""
        for _ in range(_ATTEMPTS):
            incident = await self.store.get_incident(cmd.incident_id)
            if incident is None:
                raise NotFound(f"incident {cmd.incident_id!r} not found")
            new = [NewEvent.of(await self._decide(cmd, incident), cmd.actor, cmd.incident_id)]
            if isinstance(cmd, AddNote | SilenceAlert):
                stored: list[StoredEvent] | None = await self.store.append(new)
            else:
                stored = await self.store.append_expecting(
                    cmd.incident_id, int(incident["last_seq"]), new)
            if stored is not None:
                break
        else:
            raise Conflict(f"incident {cmd.incident_id} kept changing while the command was "
                           f"decided ({_ATTEMPTS} tries): try again")
        if isinstance(cmd, ResolveIncident):
            self.submit(cmd.incident_id)  # pending approvals of a resolved incident expire
        updated = await self.store.get_incident(cmd.incident_id)
        assert updated is not None
        return IncidentCommandResult(updated, stored[0])

    async def _decide(self, cmd: IncidentCommand, incident: dict[str, Any]) -> ev.EventPayload:
        """The event the command appends to the incident as read, or Conflict."""
        resolved = incident["status"] == IncidentStatus.RESOLVED
        payload: ev.EventPayload
        match cmd:
            case Acknowledge():
                if resolved:
                    raise Conflict(f"incident {cmd.incident_id} is resolved: nothing to "
                                   "acknowledge")
                owner = await self._ownership(cmd.incident_id)
                if owner.acknowledged_by is not None:
                    raise Conflict(f"incident {cmd.incident_id} was already acknowledged by "
                                   f"{owner.acknowledged_by} at {owner.acknowledged_at}")
                payload = ev.IncidentAcknowledged(reason=cmd.comment)
            case Assign():
                owner = await self._ownership(cmd.incident_id)
                if owner.assignee == cmd.assignee:
                    raise Conflict(f"incident {cmd.incident_id} is already assigned to "
                                   f"{cmd.assignee}")
                payload = ev.IncidentAssigned(assignee=cmd.assignee, reason=cmd.comment)
            case AddNote():
                payload = ev.NoteAdded(text=cmd.text)
            case ResolveIncident():
                if resolved:
                    raise Conflict(f"incident {cmd.incident_id} is already resolved "
                                   f"(at {incident['resolved_at']})")
                payload = ev.IncidentResolved(reason=cmd.reason or "resolved by an operator",
                                              manual=True)
            case SilenceAlert():
                payload = await self._silence(cmd, incident)
        return payload

    async def _ownership(self, incident_id: str) -> Ownership:
        return ownership(await self.store.list_events(
            incident_id=incident_id, types=list(OWNERSHIP_EVENTS), limit=10_000))

    async def _silence(self, cmd: SilenceAlert, incident: dict[str, Any]) -> ev.AlertSilenced:
        if self.silencer is None:
            raise Conflict("no Alertmanager is configured (set SRE_AGENT_ALERTMANAGER_URL): "
                           "cannot create a silence")
        request = ActionRequest(
            action_id=f"silence-{uuid.uuid4().hex[:16]}", idempotency_key=uuid.uuid4().hex,
            incident_id=cmd.incident_id, kind=ActionKind.SILENCE_ALERT,
            reason=cmd.comment or f"silenced from the incident page by {cmd.actor}",
            params={"duration_s": cmd.duration_s}, labels=await self._labels(cmd.incident_id),
            summary=str(incident.get("title", "")))
        result = await self.silencer.execute(request)
        if not result.ok:
            raise Unavailable(f"Alertmanager did not create the silence: {result.error}")
        return ev.AlertSilenced(
            silence_id=str(result.detail.get("silence_id", "")), duration_s=cmd.duration_s,
            ends_at=str(result.detail.get("ends_at", "")),
            matchers=list(result.detail.get("matchers", [])), reason=request.reason)

    async def _labels(self, incident_id: str) -> dict[str, str]:
        """What the incident is grouped on: the labels its alerts share (the first
        notification's common labels), else the first alert's labels."""
        opened = await self.store.list_events(incident_id=incident_id, limit=1)
        if opened and isinstance(opened[0].payload, ev.IncidentOpened) \
                and opened[0].payload.common_labels:
            return dict(opened[0].payload.common_labels)
        first = await self.store.incident_alerts(incident_id, limit=1)
        return dict(first[0].get("labels") or {}) if first else {}
