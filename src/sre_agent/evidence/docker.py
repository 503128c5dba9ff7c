"""Container state and logs from the Docker Engine API (read-only, time-bounded, never raises).

The ``docker`` SDK is synchronous: every call runs in ``asyncio.to_thread`` under
``asyncio.wait_for``; the SDK's own request timeout bounds the thread. The client is built lazily
and thrown away after a connection failure (``sre_agent.shared.docker.LazyDockerClient``), so a
daemon that comes back is picked up again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from docker.errors import NotFound

from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget
from sre_agent.evidence.recent import RecentReads
from sre_agent.shared.docker import (
    ClientFactory,
    InvalidContainerName,
    LazyDockerClient,
    check_container_name,
    container_facts,
    default_client_factory,
    describe_docker_error,
)
from sre_agent.shared.docker import DockerUnavailable as DockerUnavailable  # re-exported
from sre_agent.shared.redact import redact

SOURCE = "docker"
MAX_LINE_CHARS = 1000


@dataclass(frozen=True)
class PublishedPort:
    container_port: str  # "8080/tcp"
    host_ip: str  # "0.0.0.0", "127.0.0.1", "::" or ""
    host_port: int


@dataclass(frozen=True)
class ContainerSummary:
    """What target resolution needs to know about one container."""

    name: str
    id: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ports: tuple[PublishedPort, ...] = ()
    state: str = ""

    @classmethod
    def from_list_entry(cls, entry: Mapping[str, Any]) -> ContainerSummary:
        """From one item of ``GET /containers/json`` (``client.api.containers()``)."""
        names = entry.get("Names") or []
        name = str(names[0]).lstrip("/") if names else str(entry.get("Id", ""))[:12]
        ports = tuple(
            PublishedPort(container_port=f"{p.get('PrivatePort')}/{p.get('Type', 'tcp')}",
                          host_ip=str(p.get("IP") or ""), host_port=int(p["PublicPort"]))
            for p in entry.get("Ports") or [] if p.get("PublicPort"))
        return cls(name=name, id=str(entry.get("Id", "")), labels=dict(entry.get("Labels") or {}),
                   ports=ports, state=str(entry.get("State") or ""))

    @classmethod
    def from_inspect(cls, attrs: Mapping[str, Any]) -> ContainerSummary:
        """From ``GET /containers/{id}/json`` (``container.attrs``)."""
        config = attrs.get("Config") or {}
        bindings = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
        ports = tuple(
            PublishedPort(container_port=str(cport), host_ip=str(b.get("HostIp") or ""),
                          host_port=int(b["HostPort"]))
            for cport, binds in bindings.items() for b in binds or [] if b.get("HostPort"))
        return cls(name=str(attrs.get("Name", "")).lstrip("/"), id=str(attrs.get("Id", "")),
                   labels=dict(config.get("Labels") or {}), ports=ports,
                   state=str((attrs.get("State") or {}).get("Status") or ""))


def _log_lines(raw: bytes | str, limit: int) -> list[str]:
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    lines = redact(text).splitlines()
    return [line[:MAX_LINE_CHARS] for line in lines[-limit:]] if limit > 0 else []


def state_data(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The evidence fields of a container, from its inspect attributes."""
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    health = state.get("Health") or {}
    data: dict[str, Any] = {
        **container_facts(attrs),
        "finished_at": state.get("FinishedAt"),
        "oom_killed": state.get("OOMKilled"),
        "labels": dict(config.get("Labels") or {}),
        "image": config.get("Image"),
    }
    checks = health.get("Log") or []
    if checks:
        last = checks[-1]
        data["health_failing_streak"] = health.get("FailingStreak", 0)
        data["health_last_output"] = redact(str(last.get("Output") or "").strip())[:MAX_LINE_CHARS]
        data["health_last_exit_code"] = last.get("ExitCode")
    return data


class DockerEvidence:
    """Container state and logs. Implements the ``EvidenceSource`` protocol."""

    name = "docker"

    def __init__(self, timeout_s: float, log_tail: int = 50,
                 client_factory: ClientFactory | None = None, recent_s: float = 0.0) -> None:
        self.timeout_s = timeout_s
        self.log_tail = max(0, log_tail)
        # What ``collect`` read of a container, shared with incidents asking within recent_s.
        self._recent: RecentReads[tuple[EvidenceStatus, dict[str, Any]]] = RecentReads(
            recent_s, keep=lambda answer: answer[0] is EvidenceStatus.OK)
        # Connection-level failures drop the client → DockerUnavailable; APIError passes.
        self._docker = LazyDockerClient(client_factory or default_client_factory(timeout_s))

    def close(self) -> None:
        self._docker.close()

    # --- sync helpers (call them from a thread) ---------------------------------------------

    def list_containers(self, label_filters: Sequence[str] | None = None) -> list[ContainerSummary]:
        """All containers (running or not), optionally filtered by ``key`` / ``key=value``
        labels. Raises DockerUnavailable or docker.errors.APIError."""
        filters = {"label": list(label_filters)} if label_filters else None
        entries = self._docker.call(lambda c: c.api.containers(all=True, filters=filters))
        return [ContainerSummary.from_list_entry(e) for e in entries]

    def inspect_container(self, name: str) -> ContainerSummary | None:
        """One container by name or id, None when it does not exist."""
        _check_name(name)
        try:
            attrs = self._docker.call(lambda c: c.api.inspect_container(name))
        except NotFound:
            return None
        return ContainerSummary.from_inspect(attrs)

    def _state_sync(self, name: str, tail: int | None) -> tuple[EvidenceStatus, dict[str, Any]]:
        _check_name(name)

        def work(client: Any) -> tuple[EvidenceStatus, dict[str, Any]]:
            try:
                attrs = client.api.inspect_container(name)
            except NotFound:
                return EvidenceStatus.NO_DATA, {"container": name, "reason": "no such container"}
            data = state_data(attrs)
            if tail is not None:
                data["logs"] = self._logs_of(client, attrs["Id"], tail)
            return EvidenceStatus.OK, data

        return self._docker.call(work)

    def _logs_sync(self, name: str, tail: int) -> tuple[EvidenceStatus, dict[str, Any]]:
        _check_name(name)

        def work(client: Any) -> tuple[EvidenceStatus, dict[str, Any]]:
            try:
                lines = self._logs_of(client, name, tail)
            except NotFound:
                return EvidenceStatus.NO_DATA, {"container": name, "reason": "no such container"}
            status = EvidenceStatus.OK if lines else EvidenceStatus.NO_DATA
            return status, {"container": name, "tail": tail, "lines": lines}

        return self._docker.call(work)

    @staticmethod
    def _logs_of(client: Any, ident: str, tail: int) -> list[str]:
        if tail <= 0:
            return []
        raw = client.api.logs(ident, stdout=True, stderr=True, tail=tail, timestamps=False)
        return _log_lines(raw, tail)

    # --- async API ------------------------------------------------------------------------

    async def _run(self, name: str,
                   work: Callable[[], tuple[EvidenceStatus, dict[str, Any]]],
                   shared: Hashable | None = None) -> Evidence:
        """``work`` in a thread, bounded; with ``shared``, a key under which the answer is
        shared with other incidents for a moment (``evidence/recent.py``)."""
        start = time.perf_counter()
        status: EvidenceStatus
        data: dict[str, Any] = {"container": name}
        error: str | None = None
        try:
            if shared is None:
                status, data = await asyncio.wait_for(asyncio.to_thread(work), self.timeout_s)
            else:
                (status, data), age = await asyncio.wait_for(self._recent.get(
                    shared, lambda: asyncio.to_thread(work)), self.timeout_s)
                if age is not None:
                    data = {**data, "cached_age_s": age}
        except TimeoutError:
            status, error = EvidenceStatus.ERROR, f"timed out after {self.timeout_s:g}s"
        except InvalidContainerName as exc:
            status, error = EvidenceStatus.ERROR, str(exc)
        except DockerUnavailable as exc:
            status, error = EvidenceStatus.ERROR, f"docker unreachable: {exc}"
        except Exception as exc:  # never raise: an unexpected failure is evidence too
            status, error = EvidenceStatus.ERROR, describe_docker_error(exc)
        return Evidence(source=SOURCE, name=name, status=status, data=data, error=error,
                        duration_ms=round((time.perf_counter() - start) * 1000, 1))

    async def container_state(self, name: str) -> Evidence:
        """State, health, restart count, exit code and labels of one container (no logs)."""
        name = name.lstrip("/")
        return await self._run(name, lambda: self._state_sync(name, None))

    async def container_logs(self, name: str, tail: int = 50) -> Evidence:
        """The last ``tail`` log lines (stdout and stderr), secrets redacted."""
        name = name.lstrip("/")
        tail = max(0, min(tail, 2000))
        return await self._run(name, lambda: self._logs_sync(name, tail))

    async def collect(self, ctx: AlertContext, targets: list[ResolvedTarget]) -> list[Evidence]:
        """State plus the last ``log_tail`` log lines of every target container."""
        names = list(dict.fromkeys(t.name.lstrip("/") for t in targets))

        async def one(name: str) -> Evidence:
            return await self._run(name, lambda: self._state_sync(name, self.log_tail),
                                   shared=(name, self.log_tail))

        return list(await asyncio.gather(*(one(n) for n in names)))


def _check_name(name: str) -> None:
    check_container_name(name)
