"""Builders for unit tests of the remediation handlers and commands on the in-memory store."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import Actor, NewEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.incident import Mode
from sre_agent.domain.policy import Policy
from sre_agent.pipeline.handlers import Context, Deps
from sre_agent.pipeline.stages import load_work
from sre_agent.ports import ActionBackend, ContainerVerifier, QueryFn
from tests.support.fakes import MANAGED, FakeBackend, FakeVerifier
from tests.support.memory_store import InMemoryEventStore
from tests.support.payloads import notification


class Clock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def incident_with_proposal(
    store: InMemoryEventStore, *, kind: ActionKind = ActionKind.RESTART_CONTAINER,
    target: str | None = "web", verified: bool = True, labels: dict[str, str] | None = None,
    confidence: float = 0.9, attempt: int = 1, body: dict[str, Any] | None = None,
    incident: str | None = None,
) -> tuple[str, str]:
    """An incident (from a real notification through ``ingest``, unless ``incident`` names
    one already there) with one more ActionProposed."""
    if incident is None:
        result = await store.ingest(WebhookNotification.model_validate(body or notification()))
        incident = result.touched[0]
    action_id = f"act-{len(store.actions) + 1}"
    await store.append([NewEvent.of(ev.ActionProposed(
        action_id=action_id, idempotency_key=f"{incident}:{kind}:{target}:{attempt}",
        kind=kind.value, target=target, alertname="TargetDown", reason="it is down",
        proposal={"confidence": confidence, "target_verified": verified,
                  "target_labels": MANAGED if labels is None else labels, "agreed": True,
                  "params": {}}), Actor.AGENT, incident)])
    return incident, action_id


def make_deps(*, backend: ActionBackend | None = None, verifier: ContainerVerifier | None = None,
              query: QueryFn | None = None, mode: Mode = Mode.AUTONOMOUS,
              clock: Callable[[], float] | None = None,
              kinds: tuple[ActionKind, ...] = (ActionKind.RESTART_CONTAINER,
                                               ActionKind.START_CONTAINER),
              **policy: Any) -> Deps:
    the_backend = backend or FakeBackend()
    return Deps({k: the_backend for k in kinds}, Policy(**policy), default_mode=mode,
                verifier=verifier or FakeVerifier(), query=query, clock=clock or Clock())


async def context(store: InMemoryEventStore, incident_id: str, deps: Deps) -> Context:
    work = await load_work(store, incident_id)
    assert work is not None
    return Context(work, store, deps)
