"""DockerEvidence and DockerTargetResolver against the real Docker daemon and busybox containers."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import docker
import pytest

from sre_agent.domain.evidence import AlertContext, EvidenceStatus, ResolvedTarget
from sre_agent.evidence.docker import DockerEvidence
from sre_agent.evidence.http_probe import HttpProbe
from sre_agent.evidence.targets import DockerTargetResolver
from tests.support.components import free_port
from tests.support.docker_helpers import (
    ContainerJanitor,
    client_fixture,  # noqa: F401 (a fixture)
    janitor_fixture,  # noqa: F401 (a fixture)
    unique_name,
    wait_until,
)

pytestmark = pytest.mark.integration

TIMEOUT_S = 5.0


@pytest.fixture
def evidence() -> Iterator[DockerEvidence]:
    ev = DockerEvidence(timeout_s=TIMEOUT_S, log_tail=20)
    yield ev
    ev.close()


def ctx_for(*label_sets: dict[str, str]) -> AlertContext:
    return AlertContext(
        incident_id="inc-1", group_key="{}:{}",
        alerts=[{"labels": {"alertname": "Test", **labels}, "annotations": {},
                 "status": "firing", "generator_url": "", "starts_at": "2026-01-01T00:00:00Z"}
                for labels in label_sets])


def unreachable_client() -> Any:
    return docker.DockerClient(base_url="unix:///nonexistent.sock", version="1.41", timeout=2)


def logs_contain(container: Any, text: str) -> bool:
    return text in container.logs().decode(errors="replace")


# --- state and logs -----------------------------------------------------------------------

async def test_running_container_state_and_redacted_logs(
        janitor: ContainerJanitor, evidence: DockerEvidence) -> None:
    c = janitor.run_busybox(["sh", "-c", "echo password=hunter2; echo hello; sleep 300"],
                            prefix="run", labels={"sre-agent.job": "web"})
    wait_until(lambda: logs_contain(c, "hello"), what="container logs")

    state = await evidence.container_state(c.name)
    assert state.status is EvidenceStatus.OK, state
    assert state.source == "docker" and state.name == c.name
    d = state.data
    assert (d["container"], d["status"], d["health"], d["restart_count"]) == (
        c.name, "running", "none", 0)
    assert d["labels"]["sre-agent.job"] == "web"
    assert d["image"] == janitor.image
    assert d["oom_killed"] is False and d["exit_code"] == 0
    assert d["started_at"] and "logs" not in d
    assert state.duration_ms > 0

    logs = await evidence.container_logs(c.name, tail=10)
    assert logs.status is EvidenceStatus.OK
    assert logs.data["lines"] == ["password=[REDACTED]", "hello"]

    [collected] = await evidence.collect(ctx_for({}), [
        ResolvedTarget(name=f"/{c.name}", via="label:container", verified=True)])
    assert collected.status is EvidenceStatus.OK
    assert collected.data["status"] == "running"
    assert "hello" in collected.data["logs"]
    assert "hunter2" not in json.dumps(collected.model_dump(mode="json"))


async def test_exited_container(janitor: ContainerJanitor, evidence: DockerEvidence) -> None:
    c = janitor.run_busybox(["sh", "-c", "exit 3"], prefix="exit")
    c.wait(timeout=15)
    state = await evidence.container_state(c.name)
    assert state.status is EvidenceStatus.OK
    assert state.data["status"] == "exited"
    assert state.data["exit_code"] == 3
    assert state.data["finished_at"] and not state.data["finished_at"].startswith("0001")
    logs = await evidence.container_logs(c.name)
    assert logs.status is EvidenceStatus.NO_DATA and logs.data["lines"] == []


async def test_failing_healthcheck_becomes_unhealthy(
        janitor: ContainerJanitor, evidence: DockerEvidence) -> None:
    second = 1_000_000_000
    c = janitor.run_busybox(["sleep", "300"], prefix="health", healthcheck={
        "test": ["CMD", "false"], "interval": second, "timeout": second, "retries": 1,
        "start_period": 0})
    start = time.monotonic()
    seen: list[str] = []
    while time.monotonic() - start < 15:
        state = await evidence.container_state(c.name)
        assert state.status is EvidenceStatus.OK, state
        seen.append(state.data["health"])
        if state.data["health"] == "unhealthy":
            break
        await asyncio.sleep(0.2)
    elapsed = time.monotonic() - start
    assert seen[-1] == "unhealthy", f"health states seen in {elapsed:.1f}s: {seen}"
    assert seen[0] in ("starting", "unhealthy")
    assert state.data["health_failing_streak"] >= 1
    assert state.data["health_last_exit_code"] == 1
    print(f"healthy->unhealthy transition observed after {elapsed:.2f}s")


async def test_missing_container_is_no_data(evidence: DockerEvidence) -> None:
    name = unique_name("missing")
    state = await evidence.container_state(name)
    assert state.status is EvidenceStatus.NO_DATA and state.error is None
    assert state.data == {"container": name, "reason": "no such container"}
    assert (await evidence.container_logs(name)).status is EvidenceStatus.NO_DATA
    [collected] = await evidence.collect(ctx_for({}), [
        ResolvedTarget(name=name, via="label:container", verified=False)])
    assert collected.status is EvidenceStatus.NO_DATA


async def test_invalid_name_is_an_error_without_asking_docker(evidence: DockerEvidence) -> None:
    ev = await evidence.container_state("../../images/json")
    assert ev.status is EvidenceStatus.ERROR
    assert "invalid container name" in (ev.error or "")


# --- Docker unreachable -------------------------------------------------------------------

@pytest.mark.parametrize("factory", [
    pytest.param(unreachable_client, id="lazy-client-connection-error"),
    pytest.param(lambda: docker.DockerClient(base_url=f"tcp://127.0.0.1:{free_port()}",
                                             timeout=2), id="version-probe-docker-exception"),
])
async def test_docker_unreachable_is_error_evidence(factory: Any) -> None:
    ev = DockerEvidence(timeout_s=TIMEOUT_S, log_tail=5, client_factory=factory)
    start = time.monotonic()
    state = await ev.container_state("web")
    logs = await ev.container_logs("web")
    elapsed = time.monotonic() - start
    for item in (state, logs):
        assert item.status is EvidenceStatus.ERROR
        assert (item.error or "").startswith("docker unreachable"), item.error
    assert elapsed < 2 * TIMEOUT_S, f"took {elapsed:.2f}s"

    resolver = DockerTargetResolver(ev)
    targets, resolution = await resolver.resolve(ctx_for({"container": "/web", "job": "web"}))
    assert [(t.name, t.via, t.verified) for t in targets] == [("web", "label:container", False)]
    assert resolution.status is EvidenceStatus.ERROR
    assert "docker unreachable" in (resolution.error or "")
    assert resolution.data["targets"][0]["verified"] is False
    assert resolution.data["in_scope"] == {"web": False}

    # nothing to look up: Docker is not asked, so its absence is not an error
    targets, resolution = await resolver.resolve(ctx_for({"alertname": "Watchdog"}))
    assert targets == [] and resolution.status is EvidenceStatus.NO_DATA


async def test_client_is_rebuilt_after_a_failure(janitor: ContainerJanitor) -> None:
    c = janitor.run_busybox(["sleep", "300"], prefix="rebuild")
    built: list[str] = []

    def factory() -> Any:
        built.append("x")
        return unreachable_client() if len(built) == 1 else docker.from_env(timeout=5)

    ev = DockerEvidence(timeout_s=TIMEOUT_S, log_tail=5, client_factory=factory)
    try:
        assert (await ev.container_state(c.name)).status is EvidenceStatus.ERROR
        assert (await ev.container_state(c.name)).status is EvidenceStatus.OK
        assert (await ev.container_state(c.name)).status is EvidenceStatus.OK
        assert len(built) == 2  # rebuilt once, then reused
    finally:
        ev.close()


# --- target resolution --------------------------------------------------------------------

async def test_resolution_via_name_label(janitor: ContainerJanitor,
                                         evidence: DockerEvidence) -> None:
    c = janitor.run_busybox(["sleep", "300"], prefix="named",
                            labels={"sre-agent.managed": "true", "team": "a"})
    targets, ev = await DockerTargetResolver(evidence).resolve(
        ctx_for({"container": f"/{c.name}", "job": "whatever"}))
    assert [(t.name, t.via, t.verified) for t in targets] == [(c.name, "label:container", True)]
    assert targets[0].labels["team"] == "a"
    assert ev.status is EvidenceStatus.OK and ev.source == "target" and ev.name == "resolution"
    assert ev.data["in_scope"] == {c.name: True}
    assert c.name in ev.data["reason"]


async def test_named_container_that_does_not_exist_is_unresolved(
        evidence: DockerEvidence) -> None:
    name = unique_name("gone")
    targets, ev = await DockerTargetResolver(evidence).resolve(ctx_for({"name": name}))
    assert targets == []
    assert ev.status is EvidenceStatus.NO_DATA
    assert ev.data["unresolved"] == [{"name": name, "via": "label:name",
                                      "reason": "no such container"}]
    assert "no such container" in ev.data["reason"]


async def test_resolution_via_job_and_instance_labels(
        janitor: ContainerJanitor, evidence: DockerEvidence) -> None:
    job = unique_name("job")
    a = janitor.run_busybox(["sleep", "300"], prefix="joba",
                            labels={"sre-agent.job": job, "sre-agent.instance": "a:1"})
    b = janitor.run_busybox(["sleep", "300"], prefix="jobb",
                            labels={"sre-agent.job": job, "sre-agent.instance": "b:2"})
    resolver = DockerTargetResolver(evidence)

    targets, ev = await resolver.resolve(ctx_for({"job": job, "instance": "b:2"}))
    assert [(t.name, t.via, t.verified) for t in targets] == [
        (b.name, "docker_label:sre-agent.job", True)]
    assert ev.status is EvidenceStatus.OK
    assert ev.data["in_scope"] == {b.name: False}  # no sre-agent.managed label

    targets, _ = await resolver.resolve(ctx_for({"job": job}))
    assert sorted(t.name for t in targets) == sorted([a.name, b.name])


async def test_resolution_via_published_port_then_probe_health_url(
        janitor: ContainerJanitor, evidence: DockerEvidence) -> None:
    port = free_port()
    health_url = f"http://127.0.0.1:{port}/health"
    c = janitor.run_busybox(["httpd", "-f", "-p", "8080", "-h", "/www"], prefix="port",
                            ports={"8080/tcp": ("127.0.0.1", port)},
                            labels={"sre-agent.health-url": health_url})
    targets, ev = await DockerTargetResolver(evidence).resolve(
        ctx_for({"job": unique_name("nojob"), "instance": f"127.0.0.1:{port}"}))
    assert [(t.name, t.via, t.verified, t.health_url) for t in targets] == [
        (c.name, f"port:{port}", True, health_url)]
    assert ev.status is EvidenceStatus.OK

    probe = HttpProbe(timeout_s=TIMEOUT_S)
    probes: list[Any] = []

    async def healthy() -> bool:
        probes[:] = await probe.collect(ctx_for({}), targets)
        return bool(probes) and probes[0].data["healthy"]

    for _ in range(50):  # httpd needs a moment to listen
        if await healthy():
            break
        await asyncio.sleep(0.2)
    [result] = probes
    assert result.status is EvidenceStatus.OK, result
    assert (result.name, result.data["status_code"], result.data["healthy"]) == (
        c.name, 200, True)
    assert result.data["body_excerpt"] == "ok"


async def test_nothing_resolves(evidence: DockerEvidence) -> None:
    targets, ev = await DockerTargetResolver(evidence).resolve(
        ctx_for({"job": unique_name("nojob"), "instance": f"127.0.0.1:{free_port()}"}))
    assert targets == []
    assert ev.status is EvidenceStatus.NO_DATA and ev.error is None
    assert "no container matches" in ev.data["reason"]


class CountingDocker(DockerEvidence):
    """The real adapter, counting how often it lists containers."""

    listings = 0

    def list_containers(self, label_filters: Any = None) -> Any:
        self.listings += 1
        return super().list_containers(label_filters)


async def test_listing_is_shared_and_reused_but_never_misses_a_new_container(
        janitor: ContainerJanitor) -> None:
    docker_ev = CountingDocker(timeout_s=TIMEOUT_S, log_tail=5)
    resolver = DockerTargetResolver(docker_ev, list_cache_s=60)
    try:
        a = janitor.run_busybox(["sleep", "300"], prefix="cache-a")
        # ten concurrent resolutions: one listing in flight, shared
        results = await asyncio.gather(*(resolver.resolve(ctx_for({"container": a.name}))
                                         for _ in range(10)))
        assert all([t.name for t in targets] == [a.name] for targets, _ in results)
        assert docker_ev.listings == 1
        targets, ev = await resolver.resolve(ctx_for({"container": a.name}))
        assert [t.name for t in targets] == [a.name] and docker_ev.listings == 1
        assert 0 <= ev.data["container_list_age_s"] < 60  # said, on the evidence
        # a container the reused list does not know yet is looked up in a new list
        b = janitor.run_busybox(["sleep", "300"], prefix="cache-b")
        targets, ev = await resolver.resolve(ctx_for({"container": b.name}))
        assert [(t.name, t.verified) for t in targets] == [(b.name, True)]
        assert docker_ev.listings == 2 and "container_list_age_s" not in ev.data
        # and without a cache, every resolution lists
        plain = DockerTargetResolver(docker_ev)
        await plain.resolve(ctx_for({"container": a.name}))
        await plain.resolve(ctx_for({"container": a.name}))
        assert docker_ev.listings == 4
    finally:
        docker_ev.close()


async def test_incidents_asking_within_the_ttl_share_one_inspect_and_say_so(
        janitor: ContainerJanitor) -> None:
    shared = DockerEvidence(timeout_s=TIMEOUT_S, log_tail=5, recent_s=60)
    try:
        c = janitor.run_busybox(["sh", "-c", "echo up; sleep 300"], prefix="share")
        wait_until(lambda: logs_contain(c, "up"))
        target = [ResolvedTarget(name=c.name, via="label:container", verified=True)]
        first = await asyncio.gather(*(shared.collect(ctx_for({}), target) for _ in range(5)))
        states = [evs[0] for evs in first]
        assert all(ev.status == EvidenceStatus.OK and ev.data["status"] == "running"
               for ev in states)
        assert sum("cached_age_s" not in ev.data for ev in states) == 1  # one read, shared
        c.stop(timeout=0)
        (later,) = await shared.collect(ctx_for({}), target)
        # still within the ttl: the shared answer, which says how old it is
        assert later.data["status"] == "running" and later.data["cached_age_s"] >= 0
        fresh = DockerEvidence(timeout_s=TIMEOUT_S, log_tail=5)  # recent_s 0: its own read
        (own,) = await fresh.collect(ctx_for({}), target)
        assert own.data["status"] == "exited" and "cached_age_s" not in own.data
        fresh.close()
    finally:
        shared.close()
