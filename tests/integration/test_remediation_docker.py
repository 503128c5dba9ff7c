"""Safety-gated remediation against the real Docker engine (busybox containers)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.actions.docker import DockerActionBackend
from sre_agent.api.app import create_app
from sre_agent.bootstrap import build_backends, build_services
from sre_agent.domain.diagnosis import ActionKind
from tests.conftest import make_settings
from tests.support.components import free_port
from tests.support.docker_helpers import (  # noqa: F401 (fixtures)
    ContainerJanitor,
    client_fixture,
    docker_client,
    janitor_fixture,
    wait_until,
)
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
URL = "/webhook/alertmanager"
MANAGED = {"sre-agent.managed": "true"}
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]




def started_at(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"]["StartedAt"])


def down_alert(name: str, starts_at: str = "2026-11-21T20:21:48.119Z",
               status: str = "firing") -> dict[str, Any]:
    return notification([alert(fingerprint=f"fp-{name}", starts_at=starts_at, status=status,
                               labels={"container": name})], group_key=f"g-{name}")


@asynccontextmanager
async def agent(tmp_path: Path, backends: dict[ActionKind, Any] | None = None,
                **overrides: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    values: dict[str, Any] = {"mode": "autonomous", "verify_deadline_s": 15,
                              "docker_stop_timeout_s": 2, **overrides}
    settings = make_settings(tmp_path, **values)
    container = build_services(settings, backends=backends)
    app = create_app(settings, services=container)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        yield c, container


async def actions_of(c: httpx.AsyncClient, incident: str) -> list[dict[str, Any]]:
    return list((await c.get("/actions", params={"incident": incident})).json())


async def test_firing_and_redeliveries_restart_exactly_once(tmp_path: Path,
                                                          janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(LOOP, prefix="web", labels=MANAGED)
    before = started_at(box)
    async with agent(tmp_path) as (c, container):
        inc = (await c.post(URL, json=down_alert(box.name))).json()["incidents"][0]
        for _ in range(3):
            again = (await c.post(URL, json=down_alert(box.name))).json()
            assert again["alerts_new"] == 0 and again["incidents"] == [inc]
        await container.runner.wait_idle(60)
        acts = await actions_of(c, inc)
        assert [(a["kind"], a["status"]) for a in acts] == [("restart_container", "verified")]
        events = (await c.get("/audit", params={"type": "ActionStarted"})).json()["items"]
        assert len(events) == 1
    assert started_at(box) != before
    box.reload()
    assert box.status == "running"


async def test_unmanaged_container_is_never_touched(tmp_path: Path,
                                                    janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(LOOP, prefix="db", labels={"app": "db"})
    before = started_at(box)
    async with agent(tmp_path) as (c, container):
        inc = (await c.post(URL, json=down_alert(box.name))).json()["incidents"][0]
        await container.runner.wait_idle(60)
        acts = await actions_of(c, inc)
        assert acts[0]["status"] == "blocked" and "out of scope" in acts[0]["decision_reason"]
        assert (await c.get(f"/incidents/{inc}")).json()["status"] == "escalated"
    assert started_at(box) == before


async def test_paused_runs_nothing(tmp_path: Path, janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(LOOP, prefix="web", labels=MANAGED)
    before = started_at(box)
    async with agent(tmp_path) as (c, container):
        await c.post("/control/pause")
        inc = (await c.post(URL, json=down_alert(box.name))).json()["incidents"][0]
        await container.runner.wait_idle(60)
        assert (await actions_of(c, inc))[0]["status"] == "blocked"
    assert started_at(box) == before


async def test_paused_escalates_and_resume_finishes_the_incident(
        tmp_path: Path, janitor: ContainerJanitor) -> None:
    """No incident falls through: blocked by the kill switch, it is escalated for a human;
    on resume the action is proposed again through the gate and runs."""
    box = janitor.run_busybox(LOOP, prefix="web", labels=MANAGED)
    before = started_at(box)
    async with agent(tmp_path) as (c, container):
        await c.post("/control/pause", json={"reason": "maintenance"})
        inc = (await c.post(URL, json=down_alert(box.name))).json()["incidents"][0]
        await container.runner.wait_idle(60)
        incident = (await c.get(f"/incidents/{inc}")).json()
        assert incident["status"] == "escalated"
        assert started_at(box) == before
        await c.post("/control/resume", headers={"X-Operator": "ann"})
        await container.runner.wait_idle(60)
        acts = await actions_of(c, inc)
        assert sorted(a["status"] for a in acts) == ["blocked", "verified"]
    assert started_at(box) != before


async def test_a_rejected_action_can_be_proposed_again_and_approved(
        tmp_path: Path, janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(LOOP, prefix="web", labels=MANAGED)
    before = started_at(box)
    async with agent(tmp_path, mode="approval") as (c, container):
        inc = (await c.post(URL, json=down_alert(box.name))).json()["incidents"][0]
        await container.runner.wait_idle(60)
        (first,) = (await c.get("/actions", params={"status": "pending_approval"})).json()
        assert (await c.post(f"/actions/{first['id']}/reject")).status_code == 200
        again = await c.post(f"/actions/{first['id']}/retry", json={"comment": "changed mind"})
        assert again.status_code == 200, again.text
        await container.runner.wait_idle(60)
        (second,) = (await c.get("/actions", params={"status": "pending_approval"})).json()
        assert second["id"] == again.json()["id"] != first["id"]
        assert (await c.post(f"/actions/{second['id']}/approve")).status_code == 200
        await container.runner.wait_idle(60)
        statuses = {a["id"]: a["status"] for a in await actions_of(c, inc)}
        assert statuses == {first["id"]: "rejected", second["id"]: "verified"}
        retry_verified = await c.post(f"/actions/{second['id']}/retry")
        assert retry_verified.status_code == 409
    assert started_at(box) != before


async def test_a_pending_action_expires_when_its_incident_resolves(
        tmp_path: Path, janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(LOOP, prefix="web", labels=MANAGED)
    async with agent(tmp_path, mode="approval") as (c, container):
        inc = (await c.post(URL, json=down_alert(box.name))).json()["incidents"][0]
        await container.runner.wait_idle(60)
        (pending,) = (await c.get("/actions", params={"status": "pending_approval"})).json()
        await c.post(URL, json=down_alert(box.name, status="resolved"))
        await container.runner.wait_idle(60)
        assert (await c.get("/actions", params={"status": "pending_approval"})).json() == []
        late = await c.post(f"/actions/{pending['id']}/approve")
        assert late.status_code == 409 and "expired" in late.json()["detail"]
        (action,) = await actions_of(c, inc)
        assert action["status"] == "expired"


async def test_approval_mode_runs_only_after_approval(tmp_path: Path,
                                                      janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(LOOP, prefix="web", labels=MANAGED)
    before = started_at(box)
    async with agent(tmp_path, mode="approval") as (c, container):
        inc = (await c.post(URL, json=down_alert(box.name))).json()["incidents"][0]
        await container.runner.wait_idle(60)
        pending = (await c.get("/actions", params={"status": "pending_approval"})).json()
        assert len(pending) == 1 and started_at(box) == before
        r = await c.post(f"/actions/{pending[0]['id']}/approve", headers={"X-Operator": "ann"})
        assert r.status_code == 200
        await container.runner.wait_idle(60)
        assert (await actions_of(c, inc))[0]["status"] == "verified"
    assert started_at(box) != before


async def test_cooldown_holds_for_the_next_incident(tmp_path: Path,
                                                    janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(LOOP, prefix="web", labels=MANAGED)
    async with agent(tmp_path, cooldown_s=600) as (c, container):
        await c.post(URL, json=down_alert(box.name))
        await container.runner.wait_idle(60)
        await c.post(URL, json=down_alert(box.name, status="resolved"))
        after_first = started_at(box)
        inc2 = (await c.post(URL, json=down_alert(
            box.name, starts_at="2026-11-21T21:00:00Z"))).json()["incidents"][0]
        await container.runner.wait_idle(60)
        second = (await actions_of(c, inc2))[0]
        assert second["status"] == "blocked" and "cooldown" in second["decision_reason"]
    assert started_at(box) == after_first


async def test_container_that_exits_at_once_trips_the_breaker(
        tmp_path: Path, janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(["sh", "-c", "exit 1"], prefix="crashy", labels=MANAGED)
    wait_until(lambda: (box.reload() or box.status) == "exited", 15)
    async with agent(tmp_path, cooldown_s=0, breaker_failures=2) as (c, container):
        statuses = []
        for i in range(3):
            starts = f"2026-11-21T2{i}:00:00Z"
            inc = (await c.post(URL, json=down_alert(box.name, starts_at=starts))
                   ).json()["incidents"][0]
            await container.runner.wait_idle(60)
            statuses.append([(a["kind"], a["status"]) for a in await actions_of(c, inc)])
            await c.post(URL, json=down_alert(box.name, starts_at=starts, status="resolved"))
        assert statuses[0] == [("start_container", "verification_failed")]
        assert statuses[1] == [("start_container", "verification_failed")]
        assert statuses[2] == [("start_container", "blocked")]
        breakers = (await c.get("/control/breakers")).json()
        assert [(b["target"], b["state"]) for b in breakers] == [(box.name, "open")]


async def test_a_crash_loop_fails_verification_and_trips_the_breaker(
        tmp_path: Path, janitor: ContainerJanitor) -> None:
    """The case from the field: `sleep 2; exit 1` looks running for two seconds after each
    restart. With a stability window it fails verification every time, the breaker trips
    after three, the fourth alert is refused, and the track record says 0% effective."""
    box = janitor.run_busybox(["sh", "-c", "sleep 2; exit 1"], prefix="crashloop",
                              labels=MANAGED)
    async with agent(tmp_path, cooldown_s=0, breaker_failures=3, verify_stable_s=6,
                     max_actions_per_target_per_hour=20) as (c, container):
        results = []
        for i in range(4):
            starts = f"2026-11-21T2{i}:00:00Z"
            inc = (await c.post(URL, json=down_alert(box.name, starts_at=starts))
                   ).json()["incidents"][0]
            await container.runner.wait_idle(90)
            results.append(await actions_of(c, inc))
            await c.post(URL, json=down_alert(box.name, starts_at=starts, status="resolved"))
        for first_three in results[:3]:
            (action,) = first_three
            assert action["status"] == "verification_failed", action
            detail = action["result"]["verification"]["detail"]["container"]
            assert detail["up_for_s"] < 6 and detail["stable_s"] == 6
        (fourth,) = results[3]
        assert fourth["status"] == "blocked" and "breaker" in fourth["decision_reason"]
        breakers = (await c.get("/control/breakers")).json()
        assert [(b["target"], b["state"]) for b in breakers] == [(box.name, "open")]
        track = [e for e in (await c.get("/status")).json()["effectiveness"]
                 if e["kind"] in ("restart_container", "start_container")]
        assert sum(e["attempts"] for e in track) == 3
        assert sum(e["successes"] for e in track) == 0  # the feedback loop learns "no use"


async def test_docker_unreachable_is_a_clean_recorded_failure(
        tmp_path: Path, janitor: ContainerJanitor) -> None:
    import docker

    box = janitor.run_busybox(LOOP, prefix="web", labels=MANAGED)
    settings = make_settings(tmp_path)
    backends = build_backends(settings)
    broken = DockerActionBackend(5, 1, client_factory=lambda: docker.DockerClient(
        base_url="unix:///nonexistent/docker.sock", timeout=2))
    backends[ActionKind.RESTART_CONTAINER] = broken
    backends[ActionKind.START_CONTAINER] = broken
    async with agent(tmp_path, backends=backends) as (c, container):
        inc = (await c.post(URL, json=down_alert(box.name))).json()["incidents"][0]
        await container.runner.wait_idle(60)
        act = (await actions_of(c, inc))[0]
        assert act["status"] == "failed"
        assert "docker" in act["result"]["error"].lower()
        assert "Traceback" not in str(act["result"])


# --- crash safety: kill -9 between ActionStarted and its outcome ------------------------------
def _serve(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    env.update({"SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'agent.db'}",
                "SRE_AGENT_MODE": "autonomous", "SRE_AGENT_DOCKER_STOP_TIMEOUT_S": "6",
                "SRE_AGENT_VERIFY_DEADLINE_S": "15"})
    with (tmp_path / f"agent-{time.time()}.log").open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sre_agent", "serve", "--port",
                                 str(port)], env=env, cwd=tmp_path,
                                stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ready", timeout=1).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("agent did not start")


def _event_types(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [r[0] for r in conn.execute("SELECT type FROM events ORDER BY seq")]


def test_kill_9_mid_action_is_reconciled_not_repeated(tmp_path: Path,
                                                      janitor: ContainerJanitor) -> None:
    # `sleep` as PID 1 ignores SIGTERM: the restart takes the whole stop timeout (6 s), which
    # leaves time to kill the agent after ActionStarted and before the outcome.
    box = janitor.run_busybox(["sleep", "3600"], prefix="slow", labels=MANAGED)
    before = started_at(box)
    port = free_port()
    db = tmp_path / "agent.db"
    proc = _serve(tmp_path, port)
    try:
        r = httpx.post(f"http://127.0.0.1:{port}{URL}", json=down_alert(box.name), timeout=10)
        assert r.status_code == 200
        wait_until(lambda: "ActionStarted" in _event_types(db), 30)
        assert "ActionSucceeded" not in _event_types(db)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    # Docker finishes the restart on its own: the world changed although we never heard back.
    wait_until(lambda: started_at(box) != before, 30)
    restarted_at = started_at(box)
    proc = _serve(tmp_path, port)
    try:
        wait_until(lambda: "VerificationPassed" in _event_types(db), 40)
        types = _event_types(db)
        assert types.count("ActionStarted") == 1
        assert types.count("ActionSucceeded") == 1
        with sqlite3.connect(db) as conn:
            data = conn.execute("SELECT data, actor FROM events WHERE type='ActionSucceeded'"
                                ).fetchone()
        assert '"reconciled":true' in data[0] and data[1] == "system"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    assert started_at(box) == restarted_at  # no second restart
    verify = subprocess.run([sys.executable, "-m", "sre_agent", "audit", "verify",
                             "--database-url", f"sqlite:///{db}"], capture_output=True, text=True,
                            timeout=60, check=False)
    assert verify.returncode == 0, verify.stderr
