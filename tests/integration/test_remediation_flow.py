"""The remediation flow end to end through the API, with fake backends on a real SQLite store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.bootstrap import Fakes, build_services
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.domain.evidence import ResolvedTarget
from sre_agent.store.sql import SqlEventStore
from tests.conftest import make_settings
from tests.support.fakes import FakeAnalyzer, FakeBackend, FakeResolver, FakeVerifier
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
URL = "/webhook/alertmanager"


@asynccontextmanager
async def agent(tmp_path: Path, *, backend: FakeBackend | None = None,
                verifier: FakeVerifier | None = None, resolver: FakeResolver | None = None,
                analyzer: FakeAnalyzer | None = None, **overrides: Any
                ) -> AsyncIterator[tuple[httpx.AsyncClient, FakeBackend, Any]]:
    settings = make_settings(tmp_path, **{"mode": "autonomous", **overrides})
    backend = backend or FakeBackend()
    backends: dict[ActionKind, Any] = {ActionKind.RESTART_CONTAINER: backend,
                                       ActionKind.START_CONTAINER: backend}
    container = build_services(settings, backends=backends, fakes=Fakes(
        analyzer=analyzer or FakeAnalyzer(), resolver=resolver or FakeResolver(), sources=[],
        verifier=verifier or FakeVerifier()))
    app = create_app(settings, services=container)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        yield c, backend, container


async def settle(container: Any) -> None:
    await container.runner.wait_idle(20)


async def types_of(c: httpx.AsyncClient, incident: str) -> list[str]:
    return [e["type"] for e in (await c.get(f"/incidents/{incident}")).json()["events"]]


async def test_autonomous_restart_runs_exactly_once_despite_redeliveries(tmp_path: Path) -> None:
    async with agent(tmp_path) as (c, backend, container):
        inc = (await c.post(URL, json=notification())).json()["incidents"][0]
        for _ in range(3):
            await c.post(URL, json=notification())
        await settle(container)
        assert len(backend.executed) == 1
        types = await types_of(c, inc)
        for t in ("DiagnosisProduced", "ActionProposed", "ActionStarted", "ActionSucceeded",
                  "VerificationPassed"):
            assert types.count(t) == 1, (t, types)
        action = (await c.get("/actions", params={"incident": inc})).json()[0]
        assert action["status"] == "verified"


async def test_approval_mode_waits_then_runs_once_approved(tmp_path: Path) -> None:
    async with agent(tmp_path, mode="approval") as (c, backend, container):
        await c.post(URL, json=notification())
        await settle(container)
        pending = (await c.get("/actions", params={"status": "pending_approval"})).json()
        assert len(pending) == 1 and backend.executed == []
        aid = pending[0]["id"]
        r = await c.post(f"/actions/{aid}/approve", json={"comment": "go"},
                         headers={"X-Operator": "alice"})
        assert r.status_code == 200 and r.json()["decided_by"] == "operator:alice"
        await settle(container)
        assert len(backend.executed) == 1
        again = await c.post(f"/actions/{aid}/approve")
        assert again.status_code == 409
        await settle(container)
        assert len(backend.executed) == 1


async def test_rejected_action_never_runs(tmp_path: Path) -> None:
    async with agent(tmp_path, mode="approval") as (c, backend, container):
        await c.post(URL, json=notification())
        await settle(container)
        aid = (await c.get("/actions", params={"status": "pending_approval"})).json()[0]["id"]
        assert (await c.post(f"/actions/{aid}/reject")).json()["status"] == "rejected"
        assert (await c.post(f"/actions/{aid}/approve")).status_code == 409
        await settle(container)
        assert backend.executed == []
        assert (await c.post("/actions/nope/approve")).status_code == 404


async def test_paused_blocks_and_the_refusal_is_visible(tmp_path: Path) -> None:
    async with agent(tmp_path) as (c, backend, container):
        await c.post("/control/pause")
        inc = (await c.post(URL, json=notification())).json()["incidents"][0]
        await settle(container)
        assert backend.executed == []
        action = (await c.get("/actions", params={"incident": inc})).json()[0]
        assert action["status"] == "blocked" and "kill switch" in action["decision_reason"]


async def test_unmanaged_container_is_never_touched_and_escalates(tmp_path: Path) -> None:
    unmanaged = FakeResolver([ResolvedTarget(name="db", via="label:container", verified=True,
                                             labels={"app": "db"})])
    async with agent(tmp_path, resolver=unmanaged) as (c, backend, container):
        inc = (await c.post(URL, json=notification())).json()["incidents"][0]
        await settle(container)
        assert backend.executed == []
        action = (await c.get("/actions", params={"incident": inc})).json()[0]
        assert action["status"] == "blocked" and "out of scope" in action["decision_reason"]
        detail = (await c.get(f"/incidents/{inc}")).json()
        assert detail["status"] == "escalated"


async def test_dry_run_records_without_running(tmp_path: Path) -> None:
    async with agent(tmp_path, mode="dry_run") as (c, backend, container):
        inc = (await c.post(URL, json=notification())).json()["incidents"][0]
        await settle(container)
        assert backend.executed == []
        assert "ActionDryRun" in await types_of(c, inc)


async def test_cooldown_holds_across_incidents(tmp_path: Path) -> None:
    async with agent(tmp_path) as (c, backend, container):
        await c.post(URL, json=notification())
        await settle(container)
        await c.post(URL, json=notification([alert(status="resolved")]))
        inc2 = (await c.post(URL, json=notification(
            [alert(starts_at="2026-11-21T21:00:00Z")]))).json()["incidents"][0]
        await settle(container)
        assert len(backend.executed) == 1
        action = (await c.get("/actions", params={"incident": inc2})).json()[0]
        assert "cooldown" in action["decision_reason"]


async def test_breaker_trips_after_ineffective_actions_and_resets(tmp_path: Path) -> None:
    async with agent(tmp_path, verifier=FakeVerifier(ok=False), cooldown_s=0,
                     breaker_failures=2) as (c, backend, container):
        for i in range(3):
            await c.post(URL, json=notification([alert(starts_at=f"2026-11-21T2{i}:00:00Z")]))
            await settle(container)
            await c.post(URL, json=notification([alert(
                status="resolved", starts_at=f"2026-11-21T2{i}:00:00Z")]))
        assert len(backend.executed) == 2
        breakers = (await c.get("/control/breakers")).json()
        assert breakers[0]["target"] == "web" and breakers[0]["state"] == "open"
        assert (await c.get("/status")).json()["open_breakers"] == ["web"]
        r = await c.post("/control/breaker/web/reset", headers={"X-Operator": "carol"})
        assert r.status_code == 200 and r.json()["state"] == "closed"
        assert (await c.post("/control/breaker/web/reset")).status_code == 404
        await c.post(URL, json=notification([alert(starts_at="2026-11-21T23:00:00Z")]))
        await settle(container)
        assert len(backend.executed) == 3


async def test_interrupted_action_is_reconciled_not_repeated(tmp_path: Path) -> None:
    """Simulate a crash between ActionStarted and its outcome, then start a new agent."""
    db = f"sqlite:///{tmp_path / 'agent.db'}"
    store = SqlEventStore(db)
    from sre_agent.domain.alertmanager import WebhookNotification

    result = await store.ingest(WebhookNotification.model_validate(notification()))
    inc = result.touched[0]
    await store.append([
        NewEvent(EventType.DIAGNOSIS_PRODUCED, Actor.AGENT, inc, {"summary": "x"}),
        NewEvent(EventType.ACTION_PROPOSED, Actor.AGENT, inc, {
            "action_id": "act-1", "idempotency_key": f"{inc}:restart_container:web:1",
            "kind": "restart_container", "target": "web", "reason": "r", "alertname": "TargetDown",
            "proposal": {"confidence": 0.9, "target_verified": True,
                         "target_labels": {"sre-agent.managed": "true"}}}),
        NewEvent(EventType.ACTION_STARTED, Actor.AGENT, inc, {"action_id": "act-1"}),
    ])
    await store.close()
    async with agent(tmp_path) as (c, backend, container):
        await settle(container)
        assert backend.executed == []  # never blindly repeated
        assert [r.action_id for r in backend.reconciled] == ["act-1"]
        action = (await c.get("/actions", params={"incident": inc})).json()[0]
        assert action["status"] == "verified" and action["result"]["reconciled"] is True


async def test_policy_endpoints(tmp_path: Path) -> None:
    async with agent(tmp_path, mode="approval") as (c, backend, container):
        policy = (await c.get("/policy")).json()
        assert policy["mode"] == "approval" and policy["scope_label"] == "sre-agent.managed=true"
        assert "restart_container" in policy["allowlist"]
        sim = await c.post("/policy/simulate", json=notification())
        assert sim.status_code == 200, sim.text
        # The simulation uses the real rules: the target is unresolved here, so the runbook
        # escalates, and this agent was given no escalation backend.
        decisions = sim.json()["decisions"]
        assert [(d["kind"], d["decision"]) for d in decisions] == [("escalate", "blocked")]
        assert "no backend" in decisions[0]["reason"]
        await settle(container)
        assert backend.executed == []
        assert (await c.get("/incidents")).json()["items"] == []  # nothing stored
        assert (await c.post("/policy/simulate", json={"version": "4"})).status_code == 422
