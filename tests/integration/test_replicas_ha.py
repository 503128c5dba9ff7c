"""Two real agents on one PostgreSQL 15 database behind a real Alertmanager 0.25 HA pair, acting
on the real Docker engine (issue 15).

Every test runs two ``sre-agent serve`` processes (role ``all``) on one fresh database; where
alerts come from Alertmanager, two instances gossip in one cluster and each sends every
notification to both replicas, so each notification reaches the agents two to four times, at
once. What is counted comes from the shared database and from Docker itself (its event stream),
never from one replica's word.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.docker_helpers import (  # noqa: F401 (fixtures)
    ContainerJanitor,
    client_fixture,
    janitor_fixture,
    wait_until,
)
from tests.support.replicas import (
    Db,
    Replica,
    alertmanager_pair,
    docker_actions,
    owner_pid,
    push_alerts,
    rfc3339,
    running_replicas,
    wait_for,
)

pytestmark = pytest.mark.integration

# PID 1 exits on TERM: a restart takes well under a second.
QUICK_STOP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
# PID 1 has no TERM handler, so the kernel ignores TERM for it: a restart waits for Docker's
# stop timeout, then SIGKILL. The action is in flight for that long, deterministically.
IGNORES_TERM = ["sh", "-c", "while true; do sleep 0.2; done"]


@pytest.fixture
def scope() -> tuple[str, str]:
    """A scope label of this test's own: no other test's container is ever in scope."""
    return f"sre-test-ha-{uuid.uuid4().hex[:8]}", "true"


def agent_env(scope: tuple[str, str], **extra: str) -> dict[str, str]:
    return {"SRE_AGENT_MODE": "autonomous", "SRE_AGENT_SCOPE_LABEL": f"{scope[0]}={scope[1]}",
            "SRE_AGENT_ACTION_ALLOWLIST": "restart_container,start_container,notify,escalate",
            "SRE_AGENT_VERIFY_STABLE_S": "1", "SRE_AGENT_VERIFY_DEADLINE_S": "30",
            "SRE_AGENT_DOCKER_STOP_TIMEOUT_S": "2", **extra}


def down_alert(container: str, job: str, *, ends_at: datetime | None = None) -> dict[str, Any]:
    """The alert Prometheus would push to each Alertmanager for the container."""
    body: dict[str, Any] = {
        "labels": {"alertname": "TargetDown", "job": job, "instance": f"{container}:8080",
                   "container": container, "severity": "critical"},
        "annotations": {"summary": f"{container} is down"},
        "startsAt": rfc3339(datetime.now(UTC) - timedelta(seconds=5)),
        "generatorURL": "http://prometheus.invalid/graph?g0.expr=up+%3D%3D+0"}
    if ends_at is not None:
        body["endsAt"] = rfc3339(ends_at)
    return body


@pytest.fixture
def db_url(pg_cluster: Any) -> str:
    return str(pg_cluster.create_database())


@pytest.fixture
def db(db_url: str) -> Iterator[Db]:
    with Db(db_url) as d:
        yield d


def deliveries(replicas: list[Replica]) -> int:
    """Webhook notifications the replicas accepted, from their own /metrics."""
    total = 0.0
    for r in replicas:
        for line in httpx.get(f"{r.base}/metrics", timeout=5).text.splitlines():
            if line.startswith('sre_agent_notifications_total{outcome="accepted"}'):
                total += float(line.rsplit(" ", 1)[1])
    return int(total)


def action_rows(db: Db) -> list[tuple[str, str, str]]:
    return [(str(k), str(t), str(s)) for k, t, s in db.rows(
        "SELECT kind, target, status FROM actions ORDER BY id")]


def resolve_and_wait(ams: list[Any], db: Db, container: str, job: str) -> None:
    push_alerts(ams, [down_alert(container, job, ends_at=datetime.now(UTC))])
    wait_for(lambda: db.one("SELECT count(*) FROM incidents WHERE status = 'resolved'") == 1,
             60, "the incident resolved through the pair")


def test_a_crashed_container_behind_the_pair_is_one_incident_and_one_start(
        tmp_path: Path, db_url: str, db: Db, scope: tuple[str, str], client: Any,
        janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(QUICK_STOP, prefix="ha-crash", labels={scope[0]: scope[1]})
    wait_until(lambda: (box.reload() or box.status) == "running", 20, what="target running")
    job = f"ha-{box.name}"
    with running_replicas(db_url, tmp_path, **agent_env(scope)) as agents, \
            alertmanager_pair(tmp_path, [a.webhook_url for a in agents]) as ams:
        since = time.time()
        box.kill()  # the crash: SIGKILL, exit code 137
        wait_until(lambda: (box.reload() or box.status) == "exited", 20, what="target exited")
        push_alerts(ams, [down_alert(box.name, job)])
        wait_for(lambda: action_rows(db) == [("start_container", box.name, "verified")], 90,
                 "one start_container, verified")
        resolve_and_wait(ams, db, box.name, job)
        assert deliveries(agents) >= 4  # firing + resolved, each to both replicas at least
        assert len(db.incidents()) == 1
        types = db.types()
        for once in ("IncidentOpened", "DiagnosisProduced", "ActionStarted",
                     "ActionSucceeded", "VerificationPassed", "IncidentResolved"):
            assert types.count(once) == 1, (once, types)
        assert action_rows(db) == [("start_container", box.name, "verified")]
        # Docker's own account: the crash (die), then exactly one start.
        seen = docker_actions(client, box.id, since)
        assert seen.count("start") == 1, seen
        assert all(r.alive() for r in agents)
    box.reload()
    assert box.status == "running"
    assert_chain_ok(db_url)


def assert_chain_ok(url: str) -> None:
    """``sre-agent audit verify`` on the shared database: one linear chain."""
    import subprocess
    import sys

    from tests.support.replicas import serve_env

    out = subprocess.run([sys.executable, "-m", "sre_agent", "audit", "verify"],
                         env=serve_env(url), capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_kill_9_of_the_lease_holder_mid_restart_the_other_finishes_without_a_second_restart(
        tmp_path: Path, db_url: str, db: Db, scope: tuple[str, str], client: Any,
        janitor: ContainerJanitor) -> None:
    """The replica running the restart dies (``kill -9``) while Docker waits out the stop
    timeout. The restart lands in the daemon anyway; the other replica takes the incident over
    when the lease runs out, asks the world (reconcile: the container started after the
    action began), records the outcome and verifies. Docker saw one restart, never two."""
    box = janitor.run_busybox(IGNORES_TERM, prefix="ha-slow", labels={scope[0]: scope[1]})
    wait_until(lambda: (box.reload() or box.status) == "running", 20, what="target running")
    job = f"ha-{box.name}"
    env = agent_env(scope, SRE_AGENT_DOCKER_STOP_TIMEOUT_S="4", SRE_AGENT_LEASE_TTL_S="3",
                    SRE_AGENT_RESUME_SWEEP_S="30")  # takeover from the lease watch, not a sweep
    with running_replicas(db_url, tmp_path, **env) as agents, \
            alertmanager_pair(tmp_path, [a.webhook_url for a in agents]) as ams:
        since = time.time()
        push_alerts(ams, [down_alert(box.name, job)])
        (started,) = wait_for(lambda: db.events("ActionStarted"), 60, "ActionStarted")
        # The stop is under way in the daemon (it sent TERM, which PID 1 ignores) ...
        wait_for(lambda: "kill" in docker_actions(client, box.id, since), 20,
                 "Docker sending the stop signal")
        incident = started["incident_id"]
        owner = db.lease_owner(incident)
        assert owner is not None
        (holder,) = [a for a in agents if a.pid == owner_pid(owner)]
        (other,) = [a for a in agents if a is not holder]
        assert "ActionSucceeded" not in db.types(incident)  # ... and not finished
        holder.kill9()
        killed_at = time.monotonic()
        wait_for(lambda: "ActionSucceeded" in db.types(incident), 60,
                 "the other replica recording the outcome")
        took_over_s = time.monotonic() - killed_at
        (succeeded,) = db.events("ActionSucceeded")
        assert succeeded["actor"] == "system" and succeeded["data"]["result"]["reconciled"]
        assert succeeded["data"]["result"]["reconcile"] == "took_effect"
        wait_for(lambda: action_rows(db) == [("restart_container", box.name, "verified")], 60,
                 "the restart verified by the other replica")
        resolve_and_wait(ams, db, box.name, job)
        types = db.types(incident)
        assert types.count("ActionStarted") == 1 and types.count("ActionSucceeded") == 1
        assert "ActionFailed" not in types
        assert other.alive()
        assert any(r.get("event") == "action_reconciled" for r in other.log_records())
        seen = docker_actions(client, box.id, since)
        assert seen.count("restart") == 1 and seen.count("start") == 1, seen
        print(f"\n[measure] kill -9 to ActionSucceeded by the other replica: {took_over_s:.1f} s "
              "(lease TTL 3 s, Docker stop timeout 4 s)")
    assert_chain_ok(db_url)
