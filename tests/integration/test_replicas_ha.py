"""Two real agents on one PostgreSQL 15 database behind a real Alertmanager 0.25 HA pair, acting
on the real Docker engine (issue 15).

Every test runs two ``sre-agent serve`` processes (role ``all``) on one fresh database; where
alerts come from Alertmanager, two instances gossip in one cluster and each sends every
notification to both replicas, so each notification reaches the agents two to four times, at
once. What is counted comes from the shared database and from Docker itself (its event stream),
never from one replica's word.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
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
from tests.support.payloads import alert, notification
from tests.support.replicas import (
    TOKEN,
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


STARTS_AT = rfc3339(datetime.now(UTC) - timedelta(minutes=1))


def down_alert(container: str, job: str, *, ends_at: datetime | None = None) -> dict[str, Any]:
    """The alert Prometheus would push to each Alertmanager for the container. Prometheus sets
    ``startsAt`` itself (the rule's active time), the same in what it sends to each instance;
    an alert pushed without it gets each instance's own receipt time, so the two instances'
    notifications would name two different firings."""
    body: dict[str, Any] = {
        "labels": {"alertname": "TargetDown", "job": job, "instance": f"{container}:8080",
                   "container": container, "severity": "critical"},
        "annotations": {"summary": f"{container} is down"},
        "startsAt": STARTS_AT,
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
            if line.startswith(('sre_agent_notifications_total{outcome="accepted"}',
                                'sre_agent_notifications_total{outcome="queued"}')):
                total += float(line.rsplit(" ", 1)[1])
    return int(total)


def action_rows(db: Db) -> list[tuple[str, str, str]]:
    return [(str(k), str(t), str(s)) for k, t, s in db.rows(
        "SELECT kind, target, status FROM actions ORDER BY id")]


def resolve_and_wait(ams: list[Any], db: Db, container: str, job: str) -> None:
    push_alerts(ams, [down_alert(container, job, ends_at=datetime.now(UTC))])
    wait_for(lambda: db.one("SELECT count(*) FROM incidents WHERE status = 'resolved'") == 1,
             60, "the incident resolved through the pair")


@pytest.mark.parametrize("ack", ["correlated", "queued"])  # SRE_AGENT_WEBHOOK_ACK
def test_a_crashed_container_behind_the_pair_is_one_incident_and_one_start(
        tmp_path: Path, db_url: str, db: Db, scope: tuple[str, str], client: Any,
        janitor: ContainerJanitor, ack: str) -> None:
    box = janitor.run_busybox(QUICK_STOP, prefix="ha-crash", labels={scope[0]: scope[1]})
    wait_until(lambda: (box.reload() or box.status) == "running", 20, what="target running")
    job = f"ha-{box.name}"
    with running_replicas(db_url, tmp_path, **agent_env(scope, SRE_AGENT_WEBHOOK_ACK=ack)
                          ) as agents, \
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


@pytest.mark.parametrize("how", ["kill-9", "sigterm"])
def test_the_lease_holder_stopped_mid_restart_the_other_finishes_without_a_second_restart(
        tmp_path: Path, db_url: str, db: Db, scope: tuple[str, str], client: Any,
        janitor: ContainerJanitor, how: str) -> None:
    """The replica running the restart dies (``kill -9``), or is stopped (SIGTERM: a rolling
    update), while Docker waits out the stop timeout. The restart lands in the daemon anyway;
    the lease is not released (a shutdown leaves it to run out), so the other replica takes
    the incident over when it runs out, asks the world (reconcile: the container started after
    the action began), records the outcome and verifies. Docker saw one restart, never two."""
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
        killed_at = time.monotonic()
        if how == "kill-9":
            holder.kill9()
        else:
            holder.process.send_signal(signal.SIGTERM)
            holder.process.wait(30)
            assert any(r.get("event") == "lease_left_to_run_out"
                       for r in holder.log_records()), holder.log_tail()
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
        print(f"\n[measure] {how} to ActionSucceeded by the other replica: {took_over_s:.1f} s "
              "(lease TTL 3 s, Docker stop timeout 4 s)")
    assert_chain_ok(db_url)


def storm_notification(n: int, per: int, prefix: str) -> dict[str, Any]:
    alerts = [alert(name=f"{prefix.capitalize()}Down", fingerprint=f"{prefix}{n:04d}{i:03d}",
                    labels={"job": f"{prefix}-job-{n:04d}",
                            "instance": f"{prefix}-{n:04d}-{i:03d}.invalid:9100"})
              for i in range(per)]
    return notification(alerts, group_key=f'{{}}:{{{prefix}="{n:04d}"}}')


async def test_fifty_redeliveries_and_distinct_alerts_at_once_across_both_replicas(
        tmp_path: Path, db_url: str, db: Db) -> None:
    """At once, through both replicas: one notification delivered 50 times (alternating),
    20 distinct notifications each delivered to both, and 10 distinct alerts through the
    Alertmanager pair. One alert row and one AlertReceived per alert, one incident per group,
    one analysis per incident, one chain."""
    with running_replicas(db_url, tmp_path, SRE_AGENT_MODE="observe") as agents, \
            alertmanager_pair(tmp_path, [a.webhook_url for a in agents]) as ams:
        push_alerts(ams, [{"labels": {"alertname": f"PairAlert{i:02d}", "job": "pair",
                                      "instance": f"pair-{i}.invalid:9100"},
                           "annotations": {"summary": f"pair alert {i}"},
                           "startsAt": STARTS_AT}
                          for i in range(10)])
        same = notification([alert(fingerprint="ha50000000000001")])
        distinct = [storm_notification(n, 1, "distinct") for n in range(20)]
        posts = [(agents[i % 2], same) for i in range(50)]
        posts += [(agents[k], body) for body in distinct for k in (0, 1)]
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=60) as client:
            answers = await asyncio.gather(*(client.post(r.webhook_url, json=body,
                                                         headers=headers)
                                             for r, body in posts))
        assert {a.status_code for a in answers} == {200}, [a.text for a in answers][:3]
        assert sum(a.json()["alerts_new"] for a in answers[:50]) == 1
        assert len({i for a in answers[:50] for i in a.json()["incidents"]}) == 1
        assert sum(a.json()["alerts_new"] for a in answers[50:]) == 20
        expected = 1 + 20 + 10
        await async_wait(lambda: db.types().count("DiagnosisProduced") == expected
                         and not pending(db), 90, "every incident analysed")
        await async_wait(lambda: all(idle(r) for r in agents), 30, "both replicas idle")
        assert len(db.incidents()) == expected
        assert db.one("SELECT count(*) FROM alerts") == expected
        assert db.one("SELECT count(DISTINCT fingerprint) FROM alerts") == expected
        assert db.types().count("AlertReceived") == expected
        twice = db.rows("SELECT incident_id FROM events WHERE type = 'DiagnosisProduced' "
                        "GROUP BY incident_id HAVING count(*) > 1")
        assert twice == []
        assert deliveries(agents) >= len(posts) + 2  # the pair's notifications too
    assert_chain_ok(db_url)


def pending(db: Db) -> list[str]:
    return [r[0] for r in db.rows(
        "SELECT i.id FROM incidents i LEFT JOIN progress p ON p.incident_id = i.id "
        "WHERE i.last_seq > coalesce(p.processed_seq, 0)")]


def idle(replica: Replica) -> bool:
    return bool(httpx.get(f"{replica.base}/status", timeout=10).json()["backlog"] == 0)


async def async_wait(predicate: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f}s")
        await asyncio.sleep(0.2)


@dataclass
class Delivery:
    sent: float
    answered: float
    status: int | str


@pytest.fixture
def own_cluster() -> Iterator[Any]:
    """A PostgreSQL cluster of this test's own: the test stops and starts it."""
    from tests.support.postgres import start_cluster

    yield from start_cluster()


@pytest.mark.parametrize("ack", ["correlated", "queued"])  # SRE_AGENT_WEBHOOK_ACK
async def test_postgresql_restarted_under_a_storm_nothing_acknowledged_is_lost(
        tmp_path: Path, own_cluster: Any, ack: str) -> None:
    """``pg_ctl stop -m fast`` in the middle of a storm through both replicas, then ``start``
    on the same port. While it is down the webhooks answer 503 (never 2xx, never 500); the
    senders retry as Alertmanager does; every alert is stored exactly once; every incident is
    analysed, once, with nobody touching anything."""
    url = own_cluster.create_database()
    groups, per = 60, 5
    bodies = [storm_notification(n, per, "pgstorm") for n in range(groups)]
    log: list[Delivery] = []
    acked = 0
    headers = {"authorization": f"Bearer {TOKEN}"}
    with running_replicas(url, tmp_path, SRE_AGENT_MODE="observe",
                          SRE_AGENT_WEBHOOK_ACK=ack) as agents:
        async with httpx.AsyncClient(timeout=30) as client:
            async def deliver(replica: Replica, body: dict[str, Any]) -> None:
                """One receiver of one Alertmanager: retried on 5xx and connection errors."""
                nonlocal acked
                delay = 0.05
                for _ in range(200):
                    t0 = time.monotonic()
                    try:
                        r = await client.post(replica.webhook_url, json=body, headers=headers)
                        status: int | str = r.status_code
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    log.append(Delivery(t0, time.monotonic(), status))
                    if status == (202 if ack == "queued" else 200):
                        acked += 1
                        return
                    assert status == 503, (status, r.text if isinstance(status, int) else "")
                    await asyncio.sleep(delay)
                    delay = min(1.0, delay * 2)
                raise AssertionError("a notification was never acknowledged")

            jobs = [(agents[k], body) for body in bodies for k in (0, 1)]
            queue: asyncio.Queue[tuple[Replica, dict[str, Any]]] = asyncio.Queue()
            for job in jobs:
                queue.put_nowait(job)

            async def sender() -> None:
                while not queue.empty():
                    replica, body = queue.get_nowait()
                    await deliver(replica, body)
                    await asyncio.sleep(0.02)  # a storm, not a benchmark: it spans the outage

            storm = asyncio.gather(*(sender() for _ in range(6)))
            await async_wait(lambda: acked >= len(jobs) // 4, 60, "a quarter acknowledged")
            await asyncio.to_thread(own_cluster.stop, "fast")
            down_at = time.monotonic()
            await async_wait(lambda: sum(1 for d in log if d.sent > down_at
                                         and d.status == 503) >= 20, 30,
                             "503s while PostgreSQL is down")
            up_at = time.monotonic()
            await asyncio.to_thread(own_cluster.start)
            await asyncio.wait_for(storm, 120)
        during = [d for d in log if d.sent > down_at and d.answered < up_at]
        assert during and {d.status for d in during} == {503}  # nothing acknowledged unstored
        assert acked == len(jobs)
        expected = groups * per
        db = Db(url)  # after the restart (a connection across it would be cut)
        await async_wait(lambda: len(db.incidents()) == groups
                         and db.types().count("DiagnosisProduced") == groups
                         and not pending(db), 120, "every incident analysed after the restart")
        assert db.one("SELECT count(*) FROM alerts") == expected
        assert db.one("SELECT count(DISTINCT fingerprint) FROM alerts") == expected
        assert db.types().count("AlertReceived") == expected
        assert db.rows("SELECT incident_id FROM events WHERE type = 'DiagnosisProduced' "
                       "GROUP BY incident_id HAVING count(*) > 1") == []
        assert all(r.alive() for r in agents)
        print(f"\n[measure] {len(log)} deliveries, {len(during)} answered while PostgreSQL was "
              f"down ({up_at - down_at:.1f} s), all 503")
        db.close()
    assert_chain_ok(url)


async def test_an_approval_clicked_on_both_replicas_at_once_runs_the_restart_once(
        tmp_path: Path, db_url: str, db: Db, scope: tuple[str, str], client: Any,
        janitor: ContainerJanitor) -> None:
    """Approval mode: the pending approval is shared; two operators approve it at the same
    moment, one on each replica. One approval wins (200), the other is told it is decided
    (409); the restart runs once, wherever the incident's lease happens to be."""
    box = janitor.run_busybox(QUICK_STOP, prefix="ha-approve", labels={scope[0]: scope[1]})
    wait_until(lambda: (box.reload() or box.status) == "running", 20, what="target running")
    job = f"ha-{box.name}"
    with running_replicas(db_url, tmp_path, **agent_env(scope, SRE_AGENT_MODE="approval")
                          ) as agents, \
            alertmanager_pair(tmp_path, [a.webhook_url for a in agents]) as ams:
        since = time.time()
        push_alerts(ams, [down_alert(box.name, job)])
        await async_wait(lambda: action_rows(db) == [
            ("restart_container", box.name, "pending_approval")], 60, "a pending approval")
        (action_id,) = [r[0] for r in db.rows("SELECT id FROM actions")]
        async with httpx.AsyncClient(timeout=30) as http:
            answers = await asyncio.gather(*(
                http.post(f"{r.base}/actions/{action_id}/approve",
                          json={"comment": f"go from {r.name}"},
                          headers={"X-Operator": f"op-{r.name}"}) for r in agents))
        assert sorted(a.status_code for a in answers) == [200, 409], [a.text for a in answers]
        await async_wait(lambda: action_rows(db) == [
            ("restart_container", box.name, "verified")], 60, "the restart verified")
        resolve_and_wait(ams, db, box.name, job)
        types = db.types()
        assert types.count("ActionApproved") == 1 and types.count("ActionStarted") == 1
        seen = docker_actions(client, box.id, since)
        assert seen.count("restart") == 1 and seen.count("start") == 1, seen
    assert_chain_ok(db_url)
