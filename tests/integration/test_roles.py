"""Roles and heartbeats (issue 15): `sre-agent serve --role api|worker` on one real PostgreSQL.

An api process ingests the alert and takes the operator's approval; a worker process, which
serves health only, analyses the incident and runs the approved restart of a real Docker
container, exactly once. /status on the api replica lists both replicas with their heartbeats
and the lease the worker holds while it verifies. With SQLite only `--role all` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from tests.support.components import free_port, wait_ready
from tests.support.docker_helpers import (  # noqa: F401 (fixtures)
    ContainerJanitor,
    client_fixture,
    janitor_fixture,
)
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
TOKEN = "roles-webhook-token-1"
WEBHOOK = {"authorization": f"Bearer {TOKEN}"}
MANAGED = {"sre-agent.managed": "true"}
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
T = TypeVar("T")


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    env.update(SRE_AGENT_DATABASE_URL=url, SRE_AGENT_WEBHOOK_TOKEN=TOKEN,
               SRE_AGENT_LOG_FORMAT="json", SRE_AGENT_HEARTBEAT_S="2",
               SRE_AGENT_LEASE_TTL_S="5", SRE_AGENT_VERIFY_DEADLINE_S="20",
               SRE_AGENT_DOCKER_STOP_TIMEOUT_S="2", **extra)
    return env


@contextlib.contextmanager
def serving(url: str, tmp_path: Path, role: str, **extra: str) -> Iterator[str]:
    """A real `sre-agent serve --role ROLE` on a free port; stopped by its PID."""
    port = free_port()
    with (tmp_path / f"{role}.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "sre_agent", "serve", "--port", str(port), "--role", role],
            env=_env(url, **extra), cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, 30)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


async def until(probe: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.2)
    raise AssertionError(f"{what} not reached within {timeout}s")


def started_at(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"]["StartedAt"])


def stage_runs(metrics_text: str) -> float:
    """How many pipeline stage runs a process's /metrics counted."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics_text.splitlines()
               if line.startswith("sre_agent_stage_seconds_count"))


async def test_an_api_and_a_worker_handle_an_alert_and_an_approval_end_to_end(
        pg_cluster: Any, tmp_path: Path, janitor: ContainerJanitor) -> None:
    url = pg_cluster.create_database()
    box = janitor.run_busybox(LOOP, prefix="roles", labels=MANAGED)
    before = started_at(box)
    payload = notification([alert(fingerprint=f"fp-{box.name}", labels={"container": box.name})],
                           group_key=f"g-{box.name}")
    with serving(url, tmp_path, "api") as api, \
            serving(url, tmp_path, "worker", SRE_AGENT_VERIFY_STABLE_S="4") as worker:
        async with httpx.AsyncClient(timeout=30) as c:
            r = await c.post(f"{api}/webhook/alertmanager", json=payload, headers=WEBHOOK)
            assert r.status_code == 200, r.text
            (incident,) = r.json()["incidents"]

            async def pending() -> dict[str, Any] | None:
                rows = (await c.get(f"{api}/actions", params={"incident": incident})).json()
                return next((a for a in rows if a["status"] == "pending_approval"), None)

            # Analysed by the worker (the api runs no stage): the restart waits for approval.
            action = await until(pending, 30, "a restart waiting for approval")
            assert action["kind"] == "restart_container" and action["target"] == box.name
            r = await c.post(f"{api}/actions/{action['id']}/approve", json={"comment": "go"},
                             headers={"X-Operator": "alice"})
            assert r.status_code == 200, r.text

            async def leased() -> dict[str, Any] | None:
                status = (await c.get(f"{api}/status")).json()
                return status if any(x["incident_id"] == incident
                                     for x in status["leases"]) else None

            # The worker restarts the container and verifies it for 4 s, holding the lease.
            status = await until(leased, 20, "the worker's lease on /status")
            assert status["role"] == "api"
            by_role = {r["role"]: r for r in status["replicas"]}
            assert set(by_role) == {"api", "worker"}
            assert by_role["api"]["this"] and not by_role["worker"]["this"]
            assert by_role["api"]["id"] == status["replica_id"]
            assert not any(r["stale"] for r in status["replicas"])
            assert all(r["heartbeat_age_s"] < 6 for r in status["replicas"])  # 3 periods
            assert by_role["worker"]["leases"] == [incident] and by_role["api"]["leases"] == []
            (lease,) = [x for x in status["leases"] if x["incident_id"] == incident]
            assert lease["owner"] == by_role["worker"]["id"] and 0 < lease["expires_in_s"] <= 5

            async def verified() -> dict[str, Any] | None:
                row = (await c.get(f"{api}/actions", params={"incident": incident})).json()
                done = [a for a in row if a["id"] == action["id"]
                        and a["status"] in ("verified", "failed", "verification_failed")]
                return done[0] if done else None

            assert (await until(verified, 40, "the action's outcome"))["status"] == "verified"
            started = (await c.get(f"{api}/audit", params={"type": "ActionStarted"})).json()
            assert len(started["items"]) == 1  # exactly once
            assert (await c.get(f"{api}/audit/verify")).json()["ok"]

            assert stage_runs((await c.get(f"{api}/metrics")).text) == 0
            assert stage_runs((await c.get(f"{worker}/metrics")).text) > 0
            # A worker serves health and metrics only, and says where to go instead.
            assert (await c.get(f"{worker}/health")).status_code == 200
            assert (await c.get(f"{worker}/ready")).status_code == 200
            r = await c.post(f"{worker}/webhook/alertmanager", json=payload, headers=WEBHOOK)
            assert r.status_code == 404 and "worker replica" in r.json()["detail"]
            assert (await c.get(f"{worker}/status")).status_code == 404
    assert started_at(box) != before  # restarted for real
    box.reload()
    assert box.status == "running"


@pytest.mark.parametrize(("argv", "env"), [
    (["--role", "worker"], {}), (["--role", "api"], {}), ([], {"SRE_AGENT_ROLE": "worker"})])
def test_a_split_role_on_sqlite_fails_in_one_line(tmp_path: Path, argv: list[str],
                                                 env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "sre_agent", "serve", "--port", str(free_port()), *argv],
        env=_env(f"sqlite:///{tmp_path / 'a.db'}", **env), capture_output=True, text=True,
        timeout=60, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "needs PostgreSQL" in lines[0] and "only --role all" in lines[0]
    assert not (tmp_path / "a.db").exists()  # refused before touching anything


async def test_status_lists_this_replica_and_marks_a_silent_one_stale(store_url: str,
                                                                     tmp_path: Path) -> None:
    """On both back ends (SQLite: the one replica), through the real app's lifespan."""
    from sre_agent.api.app import create_app
    from sre_agent.bootstrap import build_services
    from sre_agent.store.sql import SqlEventStore
    from tests.conftest import make_settings

    settings = make_settings(tmp_path, database_url=store_url, heartbeat_s=1)
    services = build_services(settings)
    app = create_app(settings, services=services)
    gone = {"id": "old-host:42:abcdef", "role": "worker", "host": "old-host", "pid": 42,
            "version": "0.0.9", "started_at": time.time() - 600}
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        await services.store.heartbeat(gone, time.time() - 30)  # a replica that died
        answer = await c.get("/status")
        assert len(answer.headers["x-request-id"]) == 16  # the RequestId middleware
        status = answer.json()
        here, old = ({r["id"]: r for r in status["replicas"]}[k]
                     for k in (services.replica.id, gone["id"]))
        assert here["this"] and here["role"] == "all" and not here["stale"]
        assert here["pid"] == os.getpid() and here["version"] == status["version"]
        assert old["stale"] and not old["this"] and old["heartbeat_age_s"] >= 29
        await asyncio.sleep(2.5)
        later = {r["id"]: r for r in (await c.get("/status")).json()["replicas"]}
        assert later[here["id"]]["last_heartbeat_at"] > here["last_heartbeat_at"]  # it beats
        assert not later[here["id"]]["stale"]
        page = (await c.get("/status", headers={"accept": "text/html"})).text
        assert "Replicas" in page and here["id"] in page and "stale" in page
    check = SqlEventStore(store_url)
    try:
        assert [r["id"] for r in await check.list_replicas()] == [gone["id"]]  # a clean stop
    finally:                                                                  # leaves the set
        await check.close()
