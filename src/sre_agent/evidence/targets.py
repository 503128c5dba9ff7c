"""Which containers an incident is about.

Per alert, in order:

1. a ``container``, ``container_name`` or ``name`` alert label (leading ``/`` stripped). It is
   authoritative: if Docker says no such container exists, the alert stays unresolved (we do not
   fall through and guess another container). If Docker is unreachable, the name is still
   reported, with ``verified=False``.
2. else containers whose Docker label ``sre-agent.job`` equals the alert's ``job`` (and, when the
   container has ``sre-agent.instance``, that equals the alert's ``instance``);
3. else a container publishing the port of the alert's ``instance`` (``host:port``) on the host;
   or, failing that, a container whose name is the ``instance`` host (``web:8080`` on a Docker
   network).

:func:`resolve_targets` is the pure decision; :class:`DockerTargetResolver` feeds it the Docker
container list. Scope (``sre-agent.managed=true``) is not enforced here; the gate does it from
the labels carried in every verified target.
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget
from sre_agent.evidence.docker import ContainerSummary, DockerEvidence
from sre_agent.shared.docker import CONTAINER_NAME_RE, DockerUnavailable
from sre_agent.shared.redact import redact

SOURCE = "target"
NAME_LABELS = ("container", "container_name", "name")
JOB_LABEL = "sre-agent.job"
INSTANCE_LABEL = "sre-agent.instance"
HEALTH_URL_LABEL = "sre-agent.health-url"
DEFAULT_SCOPE_LABEL = "sre-agent.managed=true"


@dataclass
class Resolution:
    targets: list[ResolvedTarget] = field(default_factory=list)
    unresolved: list[dict[str, str]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons) if self.reasons else "no alert label identifies a container"

    def add(self, target: ResolvedTarget) -> None:
        if all(t.name != target.name for t in self.targets):
            self.targets.append(target)

    def note(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


def split_instance(instance: str) -> tuple[str, int | None]:
    """``host:port`` → (host, port); ``[::1]:9090`` works; no port → (instance, None)."""
    instance = instance.strip()
    if instance.startswith("["):
        host, _, rest = instance[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif instance.count(":") == 1:
        host, _, port_text = instance.partition(":")
    else:
        return instance, None
    if port_text.isdigit() and 0 < int(port_text) < 65536:
        return host, int(port_text)
    return host, None


def _host_compatible(alert_host: str, bound_ip: str) -> bool:
    """Could ``alert_host`` reach a port bound on ``bound_ip``? Unknown hosts are assumed yes."""
    if bound_ip in ("", "0.0.0.0", "::"):  # noqa: S104 - reading Docker's bind address
        return True
    try:
        bound = ipaddress.ip_address(bound_ip)
    except ValueError:
        return True
    if alert_host == "localhost":
        return bound.is_loopback
    try:
        alert_ip = ipaddress.ip_address(alert_host)
    except ValueError:
        return True  # a host name: cannot tell without DNS
    return alert_ip == bound or (alert_ip.is_loopback and bound.is_loopback)


def target_from(summary: ContainerSummary, via: str) -> ResolvedTarget:
    labels = {str(k): str(v) for k, v in summary.labels.items()}
    return ResolvedTarget(name=summary.name, via=via, verified=True, labels=labels,
                          health_url=labels.get(HEALTH_URL_LABEL) or None)


def _find_by_name(name: str, containers: Sequence[ContainerSummary]) -> ContainerSummary | None:
    for c in containers:
        if c.name == name:
            return c
    lowered = name.lower()
    if len(name) >= 12 and all(ch in "0123456789abcdef" for ch in lowered):
        matches = [c for c in containers if c.id.startswith(lowered)]
        if len(matches) == 1:
            return matches[0]
    return None


def _resolve_one(labels: Mapping[str, str], containers: Sequence[ContainerSummary] | None,
                 res: Resolution) -> None:
    # (1) the alert names the container
    for key in NAME_LABELS:
        raw = str(labels.get(key) or "").strip()
        if not raw:
            continue
        name, via = raw.lstrip("/"), f"label:{key}"
        if not CONTAINER_NAME_RE.match(name):
            res.unresolved.append({"name": name[:80], "via": via,
                                   "reason": "not a valid container name"})
            res.note(f"alert label {key}={name[:80]!r} is not a valid container name")
        elif containers is None:
            res.add(ResolvedTarget(name=name, via=via, verified=False))
            res.note(f"alert label {key}={name!r}: Docker unreachable, not verified")
        elif (found := _find_by_name(name, containers)) is not None:
            res.add(target_from(found, via))
            res.note(f"alert label {key}={name!r} matched container {found.name!r}")
        else:
            res.unresolved.append({"name": name, "via": via, "reason": "no such container"})
            res.note(f"alert label {key}={name!r}: Docker has no such container")
        return

    job = str(labels.get("job") or "")
    instance = str(labels.get("instance") or "")
    if containers is None:
        if job or instance:
            res.note("Docker unreachable: cannot match job/instance to containers")
        return

    # (2) containers labelled with the alert's job (and instance, when both sides have one)
    if job:
        matched = [c for c in containers if c.labels.get(JOB_LABEL) == job
                   and (not instance or INSTANCE_LABEL not in c.labels
                        or c.labels[INSTANCE_LABEL] == instance)]
        for c in matched:
            res.add(target_from(c, f"docker_label:{JOB_LABEL}"))
        if matched:
            res.note(f"job={job!r} matched Docker label {JOB_LABEL} on "
                     + ", ".join(repr(c.name) for c in matched))
            return

    # (3) the instance's port is published by a container, or its host is a container name
    if instance:
        host, port = split_instance(instance)
        if port is not None:
            by_port = [c for c in containers
                       if any(p.host_port == port and _host_compatible(host, p.host_ip)
                              for p in c.ports)]
            for c in by_port:
                res.add(target_from(c, f"port:{port}"))
            if by_port:
                res.note(f"instance={instance!r}: host port {port} is published by "
                         + ", ".join(repr(c.name) for c in by_port))
                return
        named = next((c for c in containers if host and c.name == host), None)
        if named is not None:
            res.add(target_from(named, "instance_host"))
            res.note(f"instance={instance!r}: host is container {named.name!r}")
            return
    if job or instance:
        res.note(f"no container matches job={job!r} instance={instance!r}")


def resolve_targets(alert_labels: Sequence[Mapping[str, str]],
                    containers: Sequence[ContainerSummary] | None) -> Resolution:
    """Pure: alerts' labels + Docker's container list (None: Docker unreachable) → targets."""
    res = Resolution()
    seen: set[tuple[tuple[str, str], ...]] = set()
    for labels in alert_labels:
        key = tuple(sorted((str(k), str(v)) for k, v in labels.items()))
        if key in seen:
            continue
        seen.add(key)
        _resolve_one(labels, containers, res)
    return res


def _scope_matches(labels: Mapping[str, str], scope_label: str) -> bool:
    key, sep, value = scope_label.partition("=")
    return key in labels and (not sep or labels[key] == value)


class DockerTargetResolver:
    """Implements the ``TargetResolver`` protocol on top of :class:`DockerEvidence`."""

    def __init__(self, docker: DockerEvidence, timeout_s: float | None = None,
                 scope_label: str = DEFAULT_SCOPE_LABEL, list_cache_s: float = 0.0) -> None:
        self.docker = docker
        self.timeout_s = timeout_s if timeout_s is not None else docker.timeout_s
        self.scope_label = scope_label
        # Concurrent resolutions share one container listing in flight, and a listing is
        # reused for ``list_cache_s`` (0: every resolution lists). It only maps alert labels
        # to containers: each target's state and logs are still read fresh per incident.
        self.list_cache_s = max(0.0, list_cache_s)
        self._listed: tuple[float, list[ContainerSummary]] | None = None  # (asked at, list)
        self._listing: asyncio.Task[list[ContainerSummary]] | None = None

    async def _fetch(self, asked_at: float) -> list[ContainerSummary]:
        found = await asyncio.to_thread(self.docker.list_containers)
        if self._listed is None or self._listed[0] < asked_at:
            self._listed = (asked_at, found)
        return found

    async def _containers(self, *, fresh: bool) -> tuple[list[ContainerSummary], float | None]:
        """Docker's container list, and its age in seconds when it came from the cache."""
        if self.list_cache_s <= 0:
            return await asyncio.wait_for(asyncio.to_thread(self.docker.list_containers),
                                          self.timeout_s), None
        now = time.monotonic()
        listed = self._listed
        if not fresh and listed is not None and now - listed[0] <= self.list_cache_s:
            return listed[1], round(now - listed[0], 3)
        loop = asyncio.get_running_loop()
        task = self._listing
        # A listing in flight was asked for after the cached one: newer, so it is joined.
        if task is None or task.done() or task.get_loop() is not loop:
            task = loop.create_task(self._fetch(now))
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
            self._listing = task
        return await asyncio.wait_for(asyncio.shield(task), self.timeout_s), None

    async def resolve(self, ctx: AlertContext) -> tuple[list[ResolvedTarget], Evidence]:
        start = time.perf_counter()
        label_sets: list[Mapping[str, str]] = [
            a.get("labels") or {} for a in ctx.alerts] or [ctx.labels]
        containers: list[ContainerSummary] | None = []
        error: str | None = None
        age: float | None = None
        useful = (*NAME_LABELS, "job", "instance")
        try:
            if any(labels.get(key) for labels in label_sets for key in useful):
                containers, age = await self._containers(fresh=False)
                if age is not None:
                    cached = resolve_targets(label_sets, containers)
                    if cached.unresolved or not cached.targets:
                        # Never miss a container because the listing was a second old.
                        containers, age = await self._containers(fresh=True)
        except TimeoutError:
            containers, error = None, f"docker unreachable: timed out after {self.timeout_s:g}s"
        except DockerUnavailable as exc:
            containers, error = None, f"docker unreachable: {exc}"
        except Exception as exc:  # never raise
            containers = None
            error = redact(f"docker error: {type(exc).__name__}: {exc}")[:500]
        try:
            res = resolve_targets(label_sets, containers)
        except Exception as exc:  # defensive: the resolver must never raise
            res = Resolution(reasons=[f"resolution failed: {type(exc).__name__}: {exc}"])
            error = error or res.reasons[0]
        data: dict[str, Any] = {
            "targets": [t.model_dump() for t in res.targets],
            "unresolved": res.unresolved,
            "reason": res.reason,
            "in_scope": {t.name: t.verified and _scope_matches(t.labels, self.scope_label)
                         for t in res.targets},
        }
        if age is not None:
            data["container_list_age_s"] = age
        if error:
            status = EvidenceStatus.ERROR
        elif res.targets:
            status = EvidenceStatus.OK
        else:
            status = EvidenceStatus.NO_DATA
        evidence = Evidence(source=SOURCE, name="resolution", status=status, data=data,
                            error=error,
                            duration_ms=round((time.perf_counter() - start) * 1000, 1))
        return res.targets, evidence
