"""Container actions (restart, start) and the container recovery verifier, on the Docker Engine API.

The ``docker`` SDK is synchronous: every call runs in ``asyncio.to_thread`` under
``asyncio.wait_for``; the SDK's own HTTP timeout bounds the thread. The client is built lazily
and thrown away after a connection failure (``sre_agent.shared.docker.LazyDockerClient``), so a
daemon that comes back is picked up again. ``docker.from_env()`` raises ``DockerException`` when
the daemon is unreachable; a lazily built ``DockerClient`` raises
``requests.exceptions.ConnectionError`` on its first call: both end up as a clean ``failed``
result, never as an exception or a traceback.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from docker.errors import APIError, NotFound

from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.results import (
    ActionRequest,
    ActionResult,
    ReconcileResult,
    ReconcileStatus,
    VerificationResult,
)
from sre_agent.shared.docker import (
    MAX_ERROR_CHARS,
    ClientFactory,
    LazyDockerClient,
    check_container_name,
    container_facts,
    default_client_factory,
    describe_docker_error,
)
from sre_agent.shared.docker import DockerUnavailable as DockerUnavailable  # re-exported
from sre_agent.shared.redact import redact

T = TypeVar("T")

# RFC 3339 as Docker writes it: nanoseconds, "Z" or an offset ("0001-01-01T00:00:00Z" = never).
_RFC3339_RE = re.compile(
    r"^(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(?:\.(\d+))?\s*([Zz]|[+-]\d{2}:?\d{2})?$")


class ContainerMissing(Exception):
    """No container by that name or id."""


def parse_docker_time(value: object) -> datetime | None:
    """Parse Docker's RFC 3339 timestamps (nanosecond fractions, ``Z`` or offset) to an aware
    UTC datetime. ``None`` for empty, unparsable or the zero time (``0001-01-01...``)."""
    if not isinstance(value, str):
        return None
    m = _RFC3339_RE.match(value.strip())
    if m is None:
        return None
    day, clock, fraction, zone = m.groups()
    micros = (fraction or "0")[:6].ljust(6, "0")
    if zone is None or zone in ("Z", "z"):
        offset = "+00:00"
    else:
        offset = zone if ":" in zone else f"{zone[:3]}:{zone[3:]}"
    try:
        parsed = datetime.fromisoformat(f"{day}T{clock}.{micros}{offset}")
    except ValueError:
        return None
    if parsed.year <= 1:
        return None
    return parsed.astimezone(UTC)


def _aware(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _api_error(exc: APIError) -> str:
    explanation = getattr(exc, "explanation", None) or str(exc)
    code = exc.status_code if getattr(exc, "response", None) is not None else None
    prefix = f"docker API error {code}" if code else "docker API error"
    return redact(f"{prefix}: {explanation}")[:MAX_ERROR_CHARS]


class _DockerClientHolder(LazyDockerClient):
    """The shared lazy client, with a missing container reported as ``ContainerMissing``."""

    def call(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(client)`` (in a worker thread). Connection failures → DockerUnavailable;
        a missing container → ContainerMissing; other API errors propagate as APIError."""
        try:
            return super().call(fn)
        except NotFound as exc:
            raise ContainerMissing(str(exc)) from exc


def _check_target(target: str | None) -> str:
    name = (target or "").lstrip("/")
    if not name:
        raise ValueError("no target container given")
    return check_container_name(name)


class DockerActionBackend:
    """``restart_container`` and ``start_container``. Implements ``ActionBackend``."""

    kinds: frozenset[ActionKind] = frozenset(
        {ActionKind.RESTART_CONTAINER, ActionKind.START_CONTAINER})

    def __init__(self, timeout_s: float = 30, stop_timeout_s: int = 5,
                 client_factory: ClientFactory | None = None, *,
                 in_flight_s: float | None = None, reconcile_poll_s: float = 0.5) -> None:
        self.timeout_s = timeout_s
        self.stop_timeout_s = max(0, int(stop_timeout_s))
        # The SDK's HTTP timeout must outlast the stop timeout of a restart.
        self.call_timeout_s = max(timeout_s, self.stop_timeout_s + 5)
        factory = client_factory or default_client_factory(self.call_timeout_s)
        self._docker = _DockerClientHolder(factory)
        # How long after its start an action may still be under way in the daemon (the call's
        # own bound): a restart goes on there when the process that asked for it dies.
        self.in_flight_s = self.call_timeout_s if in_flight_s is None else max(0.0, in_flight_s)
        self.reconcile_poll_s = max(0.05, reconcile_poll_s)

    def close(self) -> None:
        self._docker.close()

    # --- sync work (runs in a thread) -------------------------------------------------------

    def _restart_sync(self, name: str) -> dict[str, Any]:
        def work(client: Any) -> dict[str, Any]:
            container = client.containers.get(name)
            before = container_facts(container.attrs)
            t0 = time.perf_counter()
            container.restart(timeout=self.stop_timeout_s)
            restart_ms = round((time.perf_counter() - t0) * 1000, 1)
            container.reload()
            return {**container_facts(container.attrs),
                    "previous_started_at": before["started_at"],
                    "previous_status": before["status"], "restart_ms": restart_ms}
        return self._docker.call(work)

    def _start_sync(self, name: str) -> dict[str, Any]:
        def work(client: Any) -> dict[str, Any]:
            container = client.containers.get(name)
            before = container_facts(container.attrs)
            if before["status"] == "running":
                return {**before, "already_running": True}
            container.start()
            container.reload()
            return {**container_facts(container.attrs), "already_running": False,
                    "previous_status": before["status"]}
        return self._docker.call(work)

    def _inspect_sync(self, name: str) -> dict[str, Any]:
        return self._docker.call(lambda client: client.api.inspect_container(name))

    # --- ActionBackend ----------------------------------------------------------------------

    async def execute(self, request: ActionRequest) -> ActionResult:
        start = time.perf_counter()

        def done(ok: bool, detail: dict[str, Any], error: str | None = None) -> ActionResult:
            return ActionResult.of(ok, detail, error,
                                duration_ms=round((time.perf_counter() - start) * 1000, 1))

        detail: dict[str, Any] = {"container": request.target, "kind": str(request.kind)}
        if request.kind not in self.kinds:
            return done(False, detail, f"unsupported action kind {request.kind!s}")
        try:
            name = _check_target(request.target)
        except ValueError as exc:
            return done(False, detail, str(exc))
        work = self._restart_sync if request.kind is ActionKind.RESTART_CONTAINER \
            else self._start_sync
        try:
            result = await asyncio.wait_for(asyncio.to_thread(work, name), self.timeout_s)
        except TimeoutError:
            return done(False, detail, f"timed out after {self.timeout_s:g}s "
                                       "(the action may still take effect; reconcile)")
        except ContainerMissing:
            return done(False, detail, f"container not found: {name}")
        except DockerUnavailable as exc:
            return done(False, detail, f"docker unreachable: {exc}")
        except APIError as exc:
            return done(False, detail, _api_error(exc))
        except Exception as exc:  # never raise
            return done(False, detail, describe_docker_error(exc))
        return done(True, {**result, "kind": str(request.kind)})

    async def reconcile(self, request: ActionRequest, started_at: datetime) -> ReconcileResult:
        """Did the container (re)start after ``started_at``? Inspects only, never acts.

        ``took_effect`` when its ``State.StartedAt`` is later than ``started_at`` (and, for
        ``start_container``, also when it is running now: starting it again would change
        nothing); ``no_effect`` when it exists and neither holds; ``unknown`` when the container
        is missing, the daemon is unreachable or the answer cannot be read.

        The daemon finishes a restart whose caller died (measured on Docker 20.10: the caller
        killed one second into a 4 s stop, the container started 4.4 s after the request). So
        ``no_effect`` is only answered once ``in_flight_s`` (the call's own bound) has passed
        since ``started_at``: until then the container is looked at again every
        ``reconcile_poll_s``, and a restart that lands meanwhile is ``took_effect``. Without
        this, a replica taking over a dead one's action mid-stop would call a restart that was
        about to happen a failure (escalation, a breaker count) while it happens anyway.
        """
        bound = timedelta(seconds=self.in_flight_s)
        # Never longer than the bound from now, whatever the other replica's clock said.
        until = min(_aware(started_at), datetime.now(UTC)) + bound
        while True:
            found = await self._reconcile_once(request, started_at)
            left = (until - datetime.now(UTC)).total_seconds()
            if found.status is not ReconcileStatus.NO_EFFECT or left <= 0:
                return found
            await asyncio.sleep(min(self.reconcile_poll_s, left))

    async def _reconcile_once(self, request: ActionRequest,
                              started_at: datetime) -> ReconcileResult:
        if request.kind not in self.kinds:
            return ReconcileResult(status=ReconcileStatus.UNKNOWN,
                                   reason=f"unsupported action kind {request.kind}")
        try:
            name = _check_target(request.target)
            attrs = await asyncio.wait_for(asyncio.to_thread(self._inspect_sync, name),
                                           self.timeout_s)
        except Exception as exc:
            return ReconcileResult(status=ReconcileStatus.UNKNOWN,
                                   reason=describe_docker_error(exc))
        state = attrs.get("State") or {}
        raw = state.get("StartedAt")
        container_started = parse_docker_time(raw)
        if container_started is not None and container_started > _aware(started_at):
            return ReconcileResult(status=ReconcileStatus.TOOK_EFFECT,
                                   reason=f"the container started at {raw}")
        if request.kind is ActionKind.START_CONTAINER and state.get("Status") == "running":
            return ReconcileResult(status=ReconcileStatus.TOOK_EFFECT,
                                   reason="the container is running")
        never_started = not raw or str(raw).startswith("0001-")
        if container_started is None and not never_started:
            return ReconcileResult(status=ReconcileStatus.UNKNOWN,
                                   reason=f"unreadable start time {raw!r}")
        return ReconcileResult(status=ReconcileStatus.NO_EFFECT,
                               reason="the container has not started since")


class DockerContainerVerifier:
    """Waits until a container is running, healthy (if it has a health check) and stays so.

    Implements ``ContainerVerifier``. Recovery has two phases: *up* within ``deadline_s`` (at
    least ``stable_polls`` polls over ``settle_s`` seeing it running, and healthy when it has a
    check), then *stays up* for ``stable_s`` with the same ``StartedAt`` and ``RestartCount``.
    A container that exits, turns unhealthy or is restarted by its restart policy during the
    window is a crash loop: verification fails at once, naming how long it stayed up.
    """

    def __init__(self, poll_s: float = 0.5, client_factory: ClientFactory | None = None, *,
                 settle_s: float = 1.0, stable_polls: int = 2,
                 request_timeout_s: float = 5.0) -> None:
        self.poll_s = max(0.05, poll_s)
        self.settle_s = max(0.0, settle_s)
        self.stable_polls = max(1, stable_polls)
        self.request_timeout_s = request_timeout_s
        self._docker = _DockerClientHolder(
            client_factory or default_client_factory(request_timeout_s))

    def close(self) -> None:
        self._docker.close()

    def _inspect_sync(self, name: str) -> dict[str, Any]:
        return self._docker.call(lambda client: client.api.inspect_container(name))

    async def _inspect(self, name: str, remaining: float) -> tuple[dict[str, Any] | None, str]:
        try:
            attrs = await asyncio.wait_for(asyncio.to_thread(self._inspect_sync, name),
                                           max(0.1, min(self.request_timeout_s, remaining)))
            return attrs, ""
        except TimeoutError:
            return None, "docker did not answer in time"
        except ContainerMissing:
            return None, "container not found"
        except DockerUnavailable as exc:
            return None, f"docker unreachable: {exc}"
        except APIError as exc:
            return None, _api_error(exc)
        except Exception as exc:  # never raise
            return None, describe_docker_error(exc)

    async def wait_recovered(self, name: str, deadline_s: float,
                             stable_s: float = 0.0) -> VerificationResult:
        start = time.monotonic()
        try:
            name = _check_target(name)
        except ValueError as exc:
            return VerificationResult.failed(str(exc), {"container": name, "waited_s": 0.0})
        window = max(self.settle_s, stable_s)
        end = start + max(0.0, deadline_s) + window
        up_deadline = start + max(0.0, deadline_s)
        facts: dict[str, Any] = {"container": name}
        reason = "not checked yet"
        # The run being watched: when it came up, its StartedAt and RestartCount.
        up_since: float | None = None
        up_started: Any = None
        up_restarts: Any = None
        good_polls = 0
        while True:
            attrs, error = await self._inspect(name, end - time.monotonic())
            now = time.monotonic()
            if attrs is None:
                reason, good_polls, up_since = error, 0, None
            else:
                facts = container_facts(attrs)
                status, health = facts["status"], facts["health"]
                good = status == "running" and (health in ("none", "healthy"))
                restarts = attrs.get("RestartCount")
                same_run = up_since is not None and facts["started_at"] == up_started and (
                    restarts == up_restarts)
                was_up = up_since is not None and good_polls >= self.stable_polls
                if was_up and up_since is not None and not (good and same_run):
                    # It was up, and is not any more (or is a new run): a crash loop.
                    facts.update(stable_s=window, up_for_s=round(now - up_since, 2),
                                 restart_count=restarts, waited_s=round(now - start, 2))
                    what = (f"container is {status} (exit code {facts['exit_code']})"
                            if status != "running" else
                            f"health is {health}" if not good else
                            f"restarted again (restart count {up_restarts} -> {restarts})")
                    return VerificationResult.failed(
                        f"did not stay up: {what} {now - up_since:.1f}s after it came up "
                        f"(needs {window:g}s)", facts)
                if good:
                    if not same_run or up_since is None:
                        up_since, up_started, up_restarts = now, facts["started_at"], restarts
                        good_polls = 0
                    good_polls += 1
                    up_for = now - up_since
                    if good_polls >= self.stable_polls and up_for >= window:
                        facts.update(stable_s=window, up_for_s=round(up_for, 2),
                                     waited_s=round(now - start, 2))
                        return VerificationResult.passed(facts)
                    reason = "running, watching that it stays up"
                else:
                    good_polls, up_since = 0, None
                    if status != "running":
                        reason = f"container is {status} (exit code {facts['exit_code']})"
                        policy = ((attrs.get("HostConfig") or {}).get("RestartPolicy") or {})
                        if status in ("exited", "dead", "created") and \
                                policy.get("Name") in (None, "", "no"):
                            # Nothing will start it again: waiting longer cannot help.
                            facts["waited_s"] = round(now - start, 2)
                            return VerificationResult.failed(
                                f"{reason} and has no restart policy", facts)
                    else:
                        reason = f"health is {health}"
            if up_since is None and now + self.poll_s > up_deadline:
                break  # never came up in time
            if now + self.poll_s > end:
                break
            await asyncio.sleep(self.poll_s)
        facts["waited_s"] = round(time.monotonic() - start, 2)
        return VerificationResult.failed(f"not recovered within {deadline_s:g}s: {reason}", facts)
