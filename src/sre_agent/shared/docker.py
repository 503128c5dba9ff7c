"""A lazily built ``docker`` SDK client, and the container facts and name rule that the Docker
adapters (evidence and actions) share.

The client is built on first use and thrown away after a connection-level failure, so a daemon
that comes back is picked up again. ``docker.from_env()`` raises ``DockerException`` when the
daemon is unreachable; a lazily built ``DockerClient`` raises
``requests.exceptions.ConnectionError`` on its first call: both become ``DockerUnavailable``.
An ``APIError`` (the daemon answered: 404, 409, 500...) passes through and keeps the client.

Adapters only: the core (``sre_agent.domain``, ``sre_agent.pipeline``) never imports this.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import docker
import requests
from docker.errors import APIError, DockerException

from sre_agent.shared.redact import redact

MAX_ERROR_CHARS = 500
# Docker's own rule for container names; ids (hex) match it too. Anything else never reaches
# the API (alert labels are untrusted and end up in a URL path).
CONTAINER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,254}$")
# What a broken connection to the daemon (or a client that cannot be built) raises.
DOCKER_ERRORS: tuple[type[Exception], ...] = (DockerException, requests.RequestException, OSError)

T = TypeVar("T")
ClientFactory = Callable[[], Any]


class DockerUnavailable(Exception):
    """The Docker daemon could not be reached (or the client could not be built)."""


class InvalidContainerName(ValueError):
    pass


def check_container_name(name: str) -> str:
    """``name`` when Docker would accept it, else InvalidContainerName (never sent to the API)."""
    if not CONTAINER_NAME_RE.match(name):
        raise InvalidContainerName(f"invalid container name {name[:80]!r}")
    return name


def container_facts(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """What a container's inspect attributes say about its state: one reading for evidence,
    action results and verification alike."""
    state = attrs.get("State") or {}
    health = state.get("Health") or {}
    return {
        "container": str(attrs.get("Name", "")).lstrip("/"),
        "id": str(attrs.get("Id", ""))[:12],
        "status": state.get("Status"),
        "health": health.get("Status") or "none",
        "started_at": state.get("StartedAt"),
        "restart_count": attrs.get("RestartCount", 0),
        "exit_code": state.get("ExitCode"),
    }


def describe_docker_error(exc: BaseException) -> str:
    """``"Type: message"`` (or just ``"Type"``), secrets redacted, length bounded."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact(text)[:MAX_ERROR_CHARS]


def default_client_factory(timeout_s: float) -> ClientFactory:
    """Builds a client from the environment (``DOCKER_HOST``...) with an HTTP timeout of
    ``timeout_s`` (at least one second)."""
    def build() -> Any:
        return docker.from_env(timeout=max(1, round(timeout_s)))
    return build


class LazyDockerClient:
    """A docker client built on first use, dropped after a connection-level failure."""

    def __init__(self, factory: ClientFactory) -> None:
        self._factory = factory
        self._client: Any = None
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The current client, built now if there is none (→ DockerUnavailable on failure)."""
        with self._lock:
            if self._client is None:
                try:
                    self._client = self._factory()
                except DOCKER_ERRORS as exc:
                    raise DockerUnavailable(describe_docker_error(exc)) from exc
            return self._client

    def reset(self, client: Any) -> None:
        """Forget ``client`` (if it is still the current one) and close it, best effort."""
        with self._lock:
            if self._client is client:
                self._client = None
        with contextlib.suppress(Exception):  # best effort on a broken client
            client.close()

    def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)`` (call it from a worker thread). Connection-level failures drop
        the client → DockerUnavailable; an ``APIError`` propagates unchanged."""
        client = self.get()
        try:
            return fn(client)
        except APIError:
            raise  # the daemon answered: the client is fine
        except DOCKER_ERRORS as exc:
            self.reset(client)
            raise DockerUnavailable(describe_docker_error(exc)) from exc

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()
