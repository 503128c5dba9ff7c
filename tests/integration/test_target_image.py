"""Dockerfile.target built FROM the local Python base and run for real: endpoints, faults, its
HEALTHCHECK (healthy, then unhealthy on a hang), a fast `docker restart`, and a crash that
exits with code 1. Also: does the agent's Dockerfile build from the same local base?"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.support.agent_image import AGENT_IMAGE, build_agent_image
from tests.support.docker_helpers import (
    ContainerJanitor,
    docker_client,
    ensure_image,
    janitor_fixture,  # noqa: F401 (a fixture)
    unique_name,
    wait_until,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("SRE_AGENT_PYTHON_BASE_IMAGE", "sre-agent/python-base:bookworm")
TARGET_IMAGE = "sre-agent/demo-target:test"
# What docker-compose.yml gives the target (tests/integration/test_compose.py checks that).
LABELS = {"sre-agent.managed": "true", "sre-agent.job": "target",
          "sre-agent.health-url": "http://target:8080/health"}


def ensure_base_image(client: Any) -> None:
    ensure_image(client, BASE_IMAGE, ["bash", str(REPO / "scripts" / "build-local-images.sh")],
                 timeout=900)


def docker_build(dockerfile: str, tag: str, timeout: float) -> tuple[int, str, float]:
    """`docker build` (legacy builder, layer cache: unchanged sources rebuild in about a second);
    returns (exit code, output, seconds)."""
    start = time.monotonic()
    result = subprocess.run(
        ["docker", "build", "--force-rm", "-f", dockerfile,
         "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", tag, "."],
        cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False)
    return result.returncode, result.stdout + result.stderr, time.monotonic() - start


@pytest.fixture(scope="module")
def client() -> Any:
    c = docker_client()
    ensure_base_image(c)
    return c


@pytest.fixture(scope="module")
def target_image(client: Any) -> str:
    code, output, seconds = docker_build("Dockerfile.target", TARGET_IMAGE, timeout=600)
    assert code == 0, output[-3000:]
    print(f"\n{TARGET_IMAGE} built in {seconds:.1f}s")
    return TARGET_IMAGE


def run_target(client: Any, janitor: ContainerJanitor, image: str, **env: str) -> Any:
    container = client.containers.run(
        image, detach=True, name=unique_name("target"),
        labels={"sre-agent.test": "1", **LABELS}, environment=env,
        ports={"8080/tcp": ("127.0.0.1", None)})
    janitor.created.append(container)
    return container


def base_url(container: Any) -> str:
    def published() -> bool:
        container.reload()
        return bool(container.ports.get("8080/tcp"))
    wait_until(published, timeout=10, what="port published")
    return f"http://127.0.0.1:{container.ports['8080/tcp'][0]['HostPort']}"


def call(method: str, url: str, timeout: float = 5) -> tuple[int, str]:
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def answers(url: str) -> bool:
    try:
        return call("GET", url, timeout=1)[0] == 200
    except OSError:
        return False


def health_status(container: Any) -> str:
    container.reload()
    return str(container.attrs["State"].get("Health", {}).get("Status", "none"))


def logs(container: Any) -> str:
    return str(container.logs().decode(errors="replace"))


# --- the target image -------------------------------------------------------------------------

def test_image_metadata(client: Any, target_image: str) -> None:
    config = client.images.get(target_image).attrs["Config"]
    assert config["User"] == "demo"
    assert "8080/tcp" in config["ExposedPorts"]
    assert config["Cmd"] == ["python3", "-m", "demo_target"]
    assert "DEMO_HOST=0.0.0.0" in config["Env"] and "DEMO_PORT=8080" in config["Env"]
    assert "/health" in " ".join(config["Healthcheck"]["Test"])


def test_container_serves_turns_healthy_and_crashes_with_exit_code_1(
        client: Any, target_image: str, janitor: ContainerJanitor) -> None:
    container = run_target(client, janitor, target_image, DEMO_TRAFFIC_RPS="5")
    url = base_url(container)
    wait_until(lambda: answers(f"{url}/health"), timeout=20, what="/health answering")
    assert container.attrs["Config"]["Labels"]["sre-agent.managed"] == "true"

    assert call("GET", f"{url}/") [0] == 200
    status, metrics = call("GET", f"{url}/metrics")
    assert status == 200
    for family in ("demo_requests_total", "demo_request_duration_seconds_bucket",
                   "demo_memory_leak_bytes", "process_resident_memory_bytes"):
        assert family in metrics, family

    assert call("POST", f"{url}/fault/errors?rate=1")[0] == 200
    assert call("GET", f"{url}/")[0] == 500
    assert call("POST", f"{url}/fault/clear")[0] == 200
    assert call("GET", f"{url}/")[0] == 200

    wait_until(lambda: health_status(container) == "healthy", timeout=30,
               what="HEALTHCHECK healthy")

    status, body = call("POST", f"{url}/fault/crash")
    assert status == 200 and '"exit_code": 1' in body

    def exited() -> bool:
        container.reload()
        return bool(container.status == "exited")
    wait_until(exited, timeout=15, what="container exited")
    assert container.attrs["State"]["ExitCode"] == 1
    out = logs(container)
    assert "fault errors: rate=1" in out and "fault crash: exiting with code 1" in out
    assert "listening on 0.0.0.0:8080 traffic_rps=5" in out


def test_hang_turns_the_container_unhealthy_and_docker_restart_clears_it(
        client: Any, target_image: str, janitor: ContainerJanitor) -> None:
    container = run_target(client, janitor, target_image)
    url = base_url(container)
    wait_until(lambda: health_status(container) == "healthy", timeout=30,
               what="HEALTHCHECK healthy")
    assert call("POST", f"{url}/fault/hang")[0] == 200
    assert call("GET", f"{url}/metrics")[0] == 200  # still scrapeable while hung
    wait_until(lambda: health_status(container) == "unhealthy", timeout=30,
               what="HEALTHCHECK unhealthy")

    container.restart(timeout=5)  # what the agent does
    url = base_url(container)
    wait_until(lambda: answers(f"{url}/health"), timeout=20, what="/health after restart")
    assert "shutting down" in logs(container)  # SIGTERM honoured as PID 1, not SIGKILLed


# --- the agent image from the same local base ----------------------------------------------

def test_agent_image_builds_from_the_local_base(client: Any) -> None:
    """The real Dockerfile, from the local base, offline (tests/support/agent_image.py)."""
    tag, seconds = build_agent_image(client)
    print(f"\n{tag} built in {seconds:.1f}s" if seconds else f"\n{tag} reused (inputs unchanged)")
    config = client.images.get(AGENT_IMAGE).attrs["Config"]
    assert config["User"] == "agent" and "8001/tcp" in config["ExposedPorts"]
