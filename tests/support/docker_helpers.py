"""Docker helpers for tests: a client, the local busybox image, and containers that are always
removed afterwards.

    client = docker_client()            # skips locally / fails under CI=true without a daemon
    with ContainerJanitor(client) as janitor:
        c = janitor.run_busybox(["sleep", "300"], labels={"sre-agent.job": "web"})

Every container gets a unique name (``sre-test-<prefix>-<random>``) and the label
``sre-agent.test=1``; the janitor removes what it created (force) in ``__exit__``.

The pytest fixtures ``client`` (module-scoped) and ``janitor`` are used by importing
``client_fixture`` / ``janitor_fixture`` into a test module (``janitor`` asks for ``client``:
import both, or define a ``client`` fixture there).
"""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from tests.support.components import require, require_docker

BUSYBOX_IMAGE = os.environ.get("SRE_AGENT_BUSYBOX_IMAGE", "sre-agent/busybox:local")
TEST_LABEL = "sre-agent.test"
REPO_ROOT = Path(__file__).resolve().parents[2]


def docker_client() -> Any:
    """A docker SDK client for the local daemon (skip locally / fail in CI without one)."""
    require_docker()
    import docker

    return docker.from_env(timeout=30)


def has_image(client: Any, tag: str) -> bool:
    import docker.errors

    try:
        client.images.get(tag)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_image(client: Any, tag: str, build_cmd: list[str], timeout: float) -> str:
    """``tag``, built by running ``build_cmd`` when it is missing (skip locally / fail under
    CI=true when it is missing still)."""
    if has_image(client, tag):
        return tag
    result = subprocess.run(build_cmd, capture_output=True, text=True, timeout=timeout,
                            check=False)
    require(has_image(client, tag), f"could not build {tag} ({' '.join(build_cmd)}): "
                                    f"{(result.stdout + result.stderr)[-1000:]}")
    return tag


def ensure_busybox_image(client: Any) -> str:
    """The busybox image tag, built by scripts/build-local-images.sh when it is missing."""
    script = REPO_ROOT / "scripts" / "build-local-images.sh"
    return ensure_image(client, BUSYBOX_IMAGE, [str(script), "--busybox-only"], timeout=300)


def unique_name(prefix: str) -> str:
    return f"sre-test-{prefix}-{uuid.uuid4().hex[:8]}"


def wait_until(predicate: Callable[[], bool], timeout: float = 15.0,
               interval: float = 0.2, what: str = "condition") -> float:
    """Poll ``predicate``; return the seconds it took, or fail the test after ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            raise AssertionError(f"{what} not reached within {timeout}s")
        time.sleep(interval)


class ContainerJanitor:
    """Runs labelled containers and force-removes every one of them on exit."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.created: list[Any] = []
        self.image = ensure_busybox_image(client)

    def run_busybox(self, command: list[str] | str, *, prefix: str = "c",
                    labels: dict[str, str] | None = None, name: str | None = None,
                    **kwargs: Any) -> Any:
        """``docker run -d`` the busybox image; extra kwargs go to ``containers.run``."""
        container = self.client.containers.run(
            self.image, command, detach=True, name=name or unique_name(prefix),
            labels={TEST_LABEL: "1", **(labels or {})}, **kwargs)
        self.created.append(container)
        return container

    def cleanup(self) -> None:
        import docker.errors

        for container in reversed(self.created):
            try:
                container.remove(force=True, v=True)
            except docker.errors.NotFound:
                pass
            except docker.errors.APIError as exc:  # removal already in progress
                if "already in progress" not in str(exc):
                    raise
        self.created.clear()

    def __enter__(self) -> ContainerJanitor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()


@pytest.fixture(scope="module", name="client")
def client_fixture() -> Iterator[Any]:
    """A docker client for the whole test module, closed afterwards."""
    c = docker_client()
    yield c
    c.close()


@pytest.fixture(name="janitor")
def janitor_fixture(client: Any) -> Iterator[ContainerJanitor]:
    """Runs test containers and removes them after the test."""
    with ContainerJanitor(client) as j:
        yield j
