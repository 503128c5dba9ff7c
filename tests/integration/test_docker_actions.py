"""DockerActionBackend and DockerContainerVerifier against the real Docker daemon (busybox)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import docker
import pytest

from sre_agent.actions.docker import (
    DockerActionBackend,
    DockerContainerVerifier,
    parse_docker_time,
)
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.results import ActionRequest, ReconcileStatus
from sre_agent.ports import ActionBackend, ContainerVerifier
from tests.support.docker_helpers import (
    ContainerJanitor,
    client_fixture,  # noqa: F401 (a fixture)
    docker_client,
    janitor_fixture,  # noqa: F401 (a fixture)
    unique_name,
    wait_until,
)

TOOK, NO_EFFECT, UNKNOWN = (ReconcileStatus.TOOK_EFFECT, ReconcileStatus.NO_EFFECT,
                            ReconcileStatus.UNKNOWN)

pytestmark = pytest.mark.integration

# A shell that exits on SIGTERM at once (PID 1 ignores TERM unless it traps it).
QUICK_STOP = ["sh", "-c", "trap 'exit 0' TERM; sleep 300 & wait"]
# What the brief names: as PID 1, sleep ignores SIGTERM, so a restart waits for the stop timeout.
SLEEPER = ["sh", "-c", "sleep 300"]
HEALTHCHECK_1S = {"interval": 1_000_000_000, "timeout": 1_000_000_000, "retries": 3,
                  "start_period": 0}


@pytest.fixture
def backend() -> Iterator[DockerActionBackend]:
    b = DockerActionBackend(timeout_s=30, stop_timeout_s=2, in_flight_s=0)  # one look each
    yield b
    b.close()


@pytest.fixture
def verifier() -> Iterator[DockerContainerVerifier]:
    v = DockerContainerVerifier(poll_s=0.25)
    yield v
    v.close()


def request(kind: ActionKind, target: str | None, key: str = "key-1") -> ActionRequest:
    return ActionRequest(action_id="act-1", idempotency_key=key, incident_id="inc-1", kind=kind,
                         target=target, reason="test")


def unreachable_client() -> Any:
    return docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41", timeout=2)


def unreachable_from_env() -> Any:
    return docker.from_env(environment={"DOCKER_HOST": "unix:///nonexistent.sock"}, timeout=2)


def started_at(container: Any) -> datetime:
    container.reload()
    parsed = parse_docker_time(container.attrs["State"]["StartedAt"])
    assert parsed is not None
    return parsed


def status_of(container: Any) -> str:
    container.reload()
    return str(container.status)


def test_backends_satisfy_the_protocols() -> None:
    backend: ActionBackend = DockerActionBackend()
    verifier: ContainerVerifier = DockerContainerVerifier()
    assert backend.kinds == {ActionKind.RESTART_CONTAINER, ActionKind.START_CONTAINER}
    assert verifier is not None


# --- restart ------------------------------------------------------------------------------

async def test_restart_running_container(janitor: ContainerJanitor,
                                         backend: DockerActionBackend) -> None:
    c = janitor.run_busybox(QUICK_STOP, prefix="restart")
    wait_until(lambda: status_of(c) == "running", what="container running")
    before = started_at(c)
    await asyncio.sleep(0.05)

    result = await backend.execute(request(ActionKind.RESTART_CONTAINER, c.name))

    assert result.ok, result
    assert result.error is None
    d = result.detail
    assert (d["container"], d["id"], d["status"]) == (c.name, c.id[:12], "running")
    assert d["kind"] == "restart_container"
    assert parse_docker_time(d["previous_started_at"]) == before
    after = parse_docker_time(d["started_at"])
    assert after is not None and after > before
    assert started_at(c) == after
    assert isinstance(d["restart_count"], int)
    assert result.duration_ms > 0
    print(f"\n[measure] restart (process exits on TERM): {result.duration_ms:.0f} ms "
          f"(docker restart call {d['restart_ms']:.0f} ms)")


async def test_restart_of_process_ignoring_term_waits_for_stop_timeout(
        janitor: ContainerJanitor, backend: DockerActionBackend) -> None:
    c = janitor.run_busybox(SLEEPER, prefix="restart-kill")
    wait_until(lambda: status_of(c) == "running", what="container running")
    before = started_at(c)

    result = await backend.execute(request(ActionKind.RESTART_CONTAINER, c.name))

    assert result.ok, result
    assert parse_docker_time(result.detail["started_at"]) > before  # type: ignore[operator]
    assert result.detail["status"] == "running"
    # stop_timeout_s=2: docker waits 2 s, then kills.
    assert 1800 <= result.duration_ms < 15000
    print(f"\n[measure] restart (sleep ignores TERM, stop timeout 2 s): "
          f"{result.duration_ms:.0f} ms")


async def test_reconcile_after_restart(janitor: ContainerJanitor,
                                       backend: DockerActionBackend) -> None:
    c = janitor.run_busybox(QUICK_STOP, prefix="reconcile")
    wait_until(lambda: status_of(c) == "running", what="container running")
    req = request(ActionKind.RESTART_CONTAINER, c.name)
    await asyncio.sleep(0.05)
    began = datetime.now(UTC)
    # Before the action: the container started earlier than ``began``.
    assert (await backend.reconcile(req, began)).status is NO_EFFECT

    result = await backend.execute(req)
    assert result.ok, result

    assert (await backend.reconcile(req, began)).status is TOOK
    assert (await backend.reconcile(req, began.replace(tzinfo=None))).status is TOOK  # naive = UTC
    later = datetime.now(UTC) + timedelta(minutes=5)
    assert (await backend.reconcile(req, later)).status is NO_EFFECT
    missing = request(ActionKind.RESTART_CONTAINER, unique_name("missing"))
    assert (await backend.reconcile(missing, began)).status is UNKNOWN
    # start_container: a running container is what starting it would achieve.
    start_req = request(ActionKind.START_CONTAINER, c.name)
    assert (await backend.reconcile(start_req, later)).status is TOOK


async def test_timed_out_restart_is_reported_and_reconciled_later(
        janitor: ContainerJanitor) -> None:
    c = janitor.run_busybox(SLEEPER, prefix="slow")
    wait_until(lambda: status_of(c) == "running", what="container running")
    slow = DockerActionBackend(timeout_s=1, stop_timeout_s=4)
    try:
        req = request(ActionKind.RESTART_CONTAINER, c.name)
        began = datetime.now(UTC)
        t0 = time.monotonic()
        result = await slow.execute(req)
        elapsed = time.monotonic() - t0
        assert not result.ok
        assert result.error is not None and "timed out after 1s" in result.error
        assert elapsed < 2.0
        # The restart goes on in the daemon: reconcile (read-only) sees it take effect.
        deadline = time.monotonic() + 15
        answer = (await slow.reconcile(req, began)).status
        while answer is not TOOK and time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            answer = (await slow.reconcile(req, began)).status
        assert answer is TOOK
    finally:
        slow.close()


async def test_reconcile_waits_for_a_restart_still_under_way_in_the_daemon(
        janitor: ContainerJanitor, client: Any) -> None:
    """The replica that asked for a restart died during the stop (its PID 1 ignores TERM, so
    the daemon waits the 3 s stop timeout): the restart lands anyway, and a reconcile begun
    before it lands answers took_effect, not no_effect."""
    c = janitor.run_busybox(SLEEPER, prefix="inflight")
    wait_until(lambda: status_of(c) == "running", what="container running")
    began = datetime.now(UTC)
    elsewhere = asyncio.create_task(asyncio.to_thread(
        client.api.restart, c.id, timeout=3))  # another process's call, left to the daemon
    b = DockerActionBackend(timeout_s=5, stop_timeout_s=3, reconcile_poll_s=0.2)
    try:
        t0 = time.monotonic()
        found = await b.reconcile(request(ActionKind.RESTART_CONTAINER, c.name), began)
        assert found.status is TOOK, found
        assert time.monotonic() - t0 >= 2.5  # it waited for the stop timeout to pass
    finally:
        b.close()
        await elsewhere
    # Once the bound has passed, a container that did not start since is no_effect.
    late = DockerActionBackend(timeout_s=1, stop_timeout_s=0, in_flight_s=0.5)
    try:
        t0 = time.monotonic()
        assert (await late.reconcile(request(ActionKind.RESTART_CONTAINER, c.name),
                                     datetime.now(UTC))).status is NO_EFFECT
        assert time.monotonic() - t0 >= 0.4
    finally:
        late.close()


# --- start --------------------------------------------------------------------------------

async def test_start_exited_container(janitor: ContainerJanitor,
                                      backend: DockerActionBackend) -> None:
    c = janitor.run_busybox(QUICK_STOP, prefix="start")
    wait_until(lambda: status_of(c) == "running", what="container running")
    c.stop(timeout=2)
    assert status_of(c) == "exited"
    began = datetime.now(UTC)
    req = request(ActionKind.START_CONTAINER, c.name)
    assert (await backend.reconcile(req, began)).status is NO_EFFECT

    result = await backend.execute(req)

    assert result.ok, result
    assert result.detail["status"] == "running"
    assert result.detail["already_running"] is False
    assert result.detail["previous_status"] == "exited"
    assert status_of(c) == "running"
    assert (await backend.reconcile(req, began)).status is TOOK


async def test_start_already_running_container(janitor: ContainerJanitor,
                                               backend: DockerActionBackend) -> None:
    c = janitor.run_busybox(QUICK_STOP, prefix="running")
    wait_until(lambda: status_of(c) == "running", what="container running")
    before = started_at(c)

    result = await backend.execute(request(ActionKind.START_CONTAINER, c.name))

    assert result.ok, result
    assert result.detail["already_running"] is True
    assert result.detail["status"] == "running"
    assert started_at(c) == before  # nothing was restarted


# --- failures -----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", [ActionKind.RESTART_CONTAINER, ActionKind.START_CONTAINER])
async def test_missing_container_is_a_clean_failure(backend: DockerActionBackend,
                                                    kind: ActionKind) -> None:
    docker_client()  # skip / fail without a daemon
    name = unique_name("missing")
    result = await backend.execute(request(kind, name))
    assert not result.ok
    assert result.error == f"container not found: {name}"
    assert "Traceback" not in result.error


@pytest.mark.parametrize("target", [None, "", "../etc", "a b", "x" * 300])
async def test_invalid_targets_never_reach_docker(target: str | None) -> None:
    calls: list[int] = []

    def factory() -> Any:
        calls.append(1)
        raise AssertionError("must not build a client")

    b = DockerActionBackend(client_factory=factory)
    result = await b.execute(request(ActionKind.RESTART_CONTAINER, target))
    assert not result.ok and result.error
    assert calls == []


async def test_unsupported_kind_is_refused() -> None:
    b = DockerActionBackend(client_factory=unreachable_client)
    result = await b.execute(request(ActionKind.SILENCE_ALERT, "web"))
    assert not result.ok and result.error == "unsupported action kind silence_alert"
    assert (await b.reconcile(request(ActionKind.NOTIFY, "web"), datetime.now(UTC))).status \
        is UNKNOWN


@pytest.mark.parametrize("factory", [unreachable_client, unreachable_from_env],
                         ids=["lazy-client", "from-env"])
async def test_daemon_unreachable_is_a_clean_failure(factory: Any) -> None:
    b = DockerActionBackend(timeout_s=5, client_factory=factory)
    for kind in (ActionKind.RESTART_CONTAINER, ActionKind.START_CONTAINER):
        t0 = time.monotonic()
        result = await b.execute(request(kind, "web"))
        elapsed = time.monotonic() - t0
        assert not result.ok
        assert result.error is not None and result.error.startswith("docker unreachable: ")
        assert "Traceback" not in result.error and "\n" not in result.error
        assert elapsed < 5.0
    assert (await b.reconcile(request(ActionKind.RESTART_CONTAINER, "web"),
                              datetime.now(UTC))).status is UNKNOWN

    v = DockerContainerVerifier(poll_s=0.2, client_factory=factory)
    t0 = time.monotonic()
    verdict = await v.wait_recovered("web", deadline_s=1.0)
    assert not verdict.ok
    assert verdict.error is not None and "docker unreachable" in verdict.error
    assert time.monotonic() - t0 < 3.0


async def test_client_is_rebuilt_after_a_connection_failure(
        janitor: ContainerJanitor) -> None:
    c = janitor.run_busybox(QUICK_STOP, prefix="rebuild")
    wait_until(lambda: status_of(c) == "running", what="container running")
    built: list[str] = []

    def factory() -> Any:
        if not built:
            built.append("broken")
            return unreachable_client()
        built.append("real")
        return docker.from_env(timeout=30)

    b = DockerActionBackend(stop_timeout_s=2, client_factory=factory)
    try:
        first = await b.execute(request(ActionKind.START_CONTAINER, c.name))
        assert not first.ok and first.error and first.error.startswith("docker unreachable")
        second = await b.execute(request(ActionKind.START_CONTAINER, c.name))
        assert second.ok, second
        assert second.detail["already_running"] is True
        assert built == ["broken", "real"]
    finally:
        b.close()


# --- verifier -----------------------------------------------------------------------------

async def test_verifier_healthy_container(janitor: ContainerJanitor,
                                          verifier: DockerContainerVerifier) -> None:
    c = janitor.run_busybox(
        ["httpd", "-f", "-p", "8080", "-h", "/www"], prefix="healthy",
        healthcheck={"test": ["CMD", "wget", "-q", "-O", "/dev/null",
                              "http://127.0.0.1:8080/health"], **HEALTHCHECK_1S})

    verdict = await verifier.wait_recovered(c.name, deadline_s=20)

    assert verdict.ok, verdict
    d = verdict.detail
    assert (d["status"], d["health"], d["container"]) == ("running", "healthy", c.name)
    assert d["restart_count"] == 0
    assert 0 < d["waited_s"] < 20
    print(f"\n[measure] verifier: healthy after {d['waited_s']} s")


async def test_verifier_running_container_without_health_check(
        janitor: ContainerJanitor, verifier: DockerContainerVerifier) -> None:
    c = janitor.run_busybox(QUICK_STOP, prefix="nocheck")
    verdict = await verifier.wait_recovered(c.name, deadline_s=10)
    assert verdict.ok, verdict
    assert verdict.detail["health"] == "none"
    assert verdict.detail["waited_s"] >= 1.0  # it had to stay up for the settle time


async def test_verifier_after_restart(janitor: ContainerJanitor, backend: DockerActionBackend,
                                      verifier: DockerContainerVerifier) -> None:
    c = janitor.run_busybox(
        QUICK_STOP, prefix="restart-verify",
        healthcheck={"test": ["CMD", "true"], **HEALTHCHECK_1S})
    result = await backend.execute(request(ActionKind.RESTART_CONTAINER, c.name))
    assert result.ok, result
    verdict = await verifier.wait_recovered(c.name, deadline_s=20)
    assert verdict.ok, verdict
    assert verdict.detail["health"] == "healthy"


async def test_verifier_unhealthy_container(janitor: ContainerJanitor,
                                            verifier: DockerContainerVerifier) -> None:
    c = janitor.run_busybox(QUICK_STOP, prefix="unhealthy",
                            healthcheck={"test": ["CMD", "false"], **HEALTHCHECK_1S})
    t0 = time.monotonic()
    verdict = await verifier.wait_recovered(c.name, deadline_s=4)
    assert not verdict.ok
    assert verdict.error is not None and verdict.error.startswith("not recovered within 4s")
    assert verdict.detail["health"] in ("starting", "unhealthy")
    assert 3.5 <= time.monotonic() - t0 < 6


async def test_verifier_process_that_exits_at_once(janitor: ContainerJanitor,
                                                   backend: DockerActionBackend,
                                                   verifier: DockerContainerVerifier) -> None:
    c = janitor.run_busybox(["sh", "-c", "exit 1"], prefix="crash")
    wait_until(lambda: status_of(c) == "exited", what="container exited")
    started = await backend.execute(request(ActionKind.START_CONTAINER, c.name))
    assert started.ok, started  # the start call itself succeeds

    t0 = time.monotonic()
    verdict = await verifier.wait_recovered(c.name, deadline_s=10)

    assert not verdict.ok
    assert verdict.detail["status"] == "exited"
    assert verdict.detail["exit_code"] == 1
    assert verdict.error is not None and "no restart policy" in verdict.error
    assert time.monotonic() - t0 < 3  # nothing will restart it: no need to wait 10 s


async def test_verifier_crash_looping_container_is_not_recovered(
        janitor: ContainerJanitor, verifier: DockerContainerVerifier) -> None:
    # Restarted by Docker again and again; each run lives well under the settle time.
    c = janitor.run_busybox(["sh", "-c", "sleep 0.3; exit 1"], prefix="flap",
                            restart_policy={"Name": "always"})
    verdict = await verifier.wait_recovered(c.name, deadline_s=5)
    assert not verdict.ok, verdict
    # Which of its states a poll sees depends on timing (a loaded machine polls late): a new
    # run ("restarted again"), or the container caught between runs ("container is
    # restarting" / "exited"). Each is the crash loop, and none is a success.
    assert verdict.error is not None and verdict.error.startswith(
        ("not recovered within 5s", "did not stay up: restarted again",
         "did not stay up: container is restarting", "did not stay up: container is exited")
    ), verdict.error


async def test_verifier_missing_container(verifier: DockerContainerVerifier) -> None:
    docker_client()
    verdict = await verifier.wait_recovered(unique_name("missing"), deadline_s=1)
    assert not verdict.ok
    assert verdict.error is not None and "container not found" in verdict.error


# --- timestamps ---------------------------------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("2024-05-06T07:08:09.123456789Z", datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)),
    ("2024-05-06T07:08:09Z", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
    ("2024-05-06T09:08:09.5+02:00", datetime(2024, 5, 6, 7, 8, 9, 500000, tzinfo=UTC)),
    ("2024-05-06T07:08:09.000000001-0100", datetime(2024, 5, 6, 8, 8, 9, tzinfo=UTC)),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
    ("yesterday", None),
    (None, None),
])
def test_parse_docker_time(raw: object, expected: datetime | None) -> None:
    assert parse_docker_time(raw) == expected
