"""The dispatcher: which handler a step goes to, and the Remediation stage that drives them.

Each action found in the incident's projection starts one step (by its status); every event a
handler appends may start the next step for that action (by its type). A root's steps run to
the end before the next action's, so each decision sees the effects of the ones before it.
"""

from __future__ import annotations

from typing import Any

from sre_agent.domain.actions import PENDING, RUNNABLE, ActionStatus
from sre_agent.domain.diagnosis import CONTAINER_ACTIONS, ActionKind
from sre_agent.domain.events import EventType, StoredEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.pipeline.handlers.act import act, reconcile
from sre_agent.pipeline.handlers.base import Context, Deps, Handler, Step, StepKind
from sre_agent.pipeline.handlers.breaker import breaker
from sre_agent.pipeline.handlers.gate import expire, gate
from sre_agent.pipeline.handlers.verify import verify
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import EventStore

HANDLERS: dict[StepKind, Handler] = {
    StepKind.GATE: gate, StepKind.EXPIRE: expire, StepKind.ACT: act,
    StepKind.RECONCILE: reconcile, StepKind.VERIFY: verify, StepKind.BREAKER: breaker,
}
# The step an action's status calls for when an incident is (re)processed.
BY_STATUS: dict[str, StepKind] = {
    ActionStatus.PROPOSED: StepKind.GATE, ActionStatus.APPROVED: StepKind.GATE,
    ActionStatus.PENDING_APPROVAL: StepKind.EXPIRE, ActionStatus.RUNNING: StepKind.RECONCILE,
    ActionStatus.SUCCEEDED: StepKind.VERIFY,
}
# The step an appended event calls for.
BY_EVENT: dict[str, StepKind] = {
    EventType.ACTION_PROPOSED: StepKind.GATE, EventType.ACTION_APPROVED: StepKind.GATE,
    EventType.ACTION_SUCCEEDED: StepKind.VERIFY, EventType.ACTION_FAILED: StepKind.BREAKER,
    EventType.VERIFICATION_FAILED: StepKind.BREAKER,
}
# The statuses in which a step still makes sense: a step whose action moved on meanwhile (an
# operator rejected it, another worker ran it) is dropped, never applied to a stale row.
EXPECTS: dict[StepKind, frozenset[str]] = {
    StepKind.GATE: RUNNABLE, StepKind.ACT: RUNNABLE, StepKind.EXPIRE: PENDING,
    StepKind.RECONCILE: frozenset({ActionStatus.RUNNING}),
    StepKind.VERIFY: frozenset({ActionStatus.SUCCEEDED}),
    StepKind.BREAKER: frozenset(ActionStatus),
}
_MAX_STEPS = 100  # per root: a bound, never reached by the finite lifecycle


def _kind_wanted(kind: StepKind, row: dict[str, Any]) -> bool:
    """Whether the step applies to this kind of action at all (only containers are verified)."""
    return kind != StepKind.VERIFY or ActionKind(row["kind"]) in CONTAINER_ACTIONS


def _wanted(kind: StepKind, row: dict[str, Any]) -> bool:
    return row["status"] in EXPECTS[kind] and _kind_wanted(kind, row)


def step_for_event(event: StoredEvent) -> Step | None:
    kind = BY_EVENT.get(event.type)
    p = event.payload
    if kind is None or not isinstance(p, ev.ActionEvent):
        return None
    return Step(kind, p.action_id)


class Remediation:
    """The Stage that dispatches remediation steps to their handlers."""

    name = "remediate"

    def __init__(self, deps: Deps, handlers: dict[StepKind, Handler] | None = None) -> None:
        self.deps = deps
        self.handlers = handlers if handlers is not None else HANDLERS

    async def run(self, work: IncidentWork, store: EventStore) -> list[StoredEvent]:
        """Every action's steps, oldest proposal first; returns what the handlers appended."""
        ctx = Context(work, store, self.deps)
        rows = sorted(await store.list_actions(incident_id=work.id, limit=1000),
                      key=lambda r: r["proposed_at"])
        appended: list[StoredEvent] = []
        for row in rows:
            kind = BY_STATUS.get(row["status"])
            if kind is not None and _wanted(kind, row):
                appended += await self.dispatch(Step(kind, row["id"]), ctx, row)
        return appended

    async def dispatch(self, root: Step, ctx: Context,
                       row: dict[str, Any] | None = None) -> list[StoredEvent]:
        """Run ``root`` and every step that follows from it, in order; ``row`` is the root's
        action row when the caller has just read it. Returns what the handlers appended."""
        queue = [root]
        appended: list[StoredEvent] = []
        known = row  # the action's row as last read: its kind never changes
        for _ in range(_MAX_STEPS):
            if not queue:
                break
            step = queue.pop(0)
            if step is root and row is not None:
                current: dict[str, Any] | None = row  # just read by the caller
            elif known is not None and not _kind_wanted(step.kind, known):
                continue  # e.g. no verification of a notification: no need to read it
            else:
                current = await ctx.store.get_action(step.action_id)
            if current is None or not _wanted(step.kind, current):
                continue
            known = current
            for out in await self.handlers[step.kind](step, current, ctx):
                if isinstance(out, StoredEvent):
                    appended.append(out)
                nxt = out if isinstance(out, Step) else step_for_event(out)
                if nxt is not None:
                    queue.append(nxt)
        return appended
