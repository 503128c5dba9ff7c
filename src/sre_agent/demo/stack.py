"""The whole loop on one machine: Prometheus, Alertmanager, the demo target and the agent.

    with DemoStack(StackOptions(mode="autonomous")) as stack:   # starts everything
        stack.wait_healthy()
        stack.inject_fault("crash")
        ...
                                                               # stops everything

What it starts (no registry, no compose):

- the demo target as a Docker container from the local image (built from ``Dockerfile.target``
  when missing), published on a free loopback port, labelled ``sre-agent.managed=true``,
  ``sre-agent.job=<job>``, ``sre-agent.instance=127.0.0.1:<port>`` and
  ``sre-agent.health-url=http://127.0.0.1:<port>/health``, with no restart policy and a fast
  HEALTHCHECK (1 s). More targets, managed or not, can be added (``StackOptions.targets``);
- the agent, ``python -m sre_agent serve``, as a subprocess on a free port with its SQLite file,
  a webhook token and an operator token generated for this run;
- Alertmanager and Prometheus from their binaries (PATH, else /usr/bin), on free ports, with
  configurations *derived* from ``monitoring/*.yml``: every rule and route is kept, only the
  addresses, the credentials file and the timings are replaced (scrape and evaluation 1 s, each
  rule's ``for`` a sixth of its real value clamped to 2..5 s, ``group_wait`` 1 s,
  ``group_interval`` 5 s).

Everything is stopped by PID (SIGTERM, then SIGKILL) and by container removal, in ``stop()``,
which also runs when ``start()`` fails half-way and on leaving the ``with`` block.

By role: ``spec`` (options, targets, settings), ``targets`` (the containers), ``monitoring``
(Prometheus and Alertmanager), ``agent_api`` (the operator API client), ``configs``,
``processes`` and ``images``; this module runs the agent and the lifecycle.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from sre_agent.demo.agent_api import AgentApi
from sre_agent.demo.images import ImageError, ensure_target_image, find_repo_root
from sre_agent.demo.monitoring import Monitoring
from sre_agent.demo.processes import (
    HOST,
    Process,
    StackError,
    find_binary,
    free_port,
    spawn,
    url_ok,
    wait_for,
)
from sre_agent.demo.spec import (
    AGENT_DEFAULTS,
    ALERTMANAGER_BINARIES,
    DEFAULT_TARGET_ENV,
    DEMO_LABEL,
    FAULTS,
    PROMETHEUS_BINARIES,
    StackOptions,
    Target,
    TargetSpec,
)
from sre_agent.demo.targets import Targets

__all__ = ["DEFAULT_TARGET_ENV", "FAULTS", "DemoStack", "StackOptions", "Target", "TargetSpec"]


# --- the stack ------------------------------------------------------------------------------

class DemoStack(Targets, Monitoring, AgentApi):
    """Start with ``start()`` (or ``with``); ``stop()`` is idempotent and never raises."""

    def __init__(self, options: StackOptions | None = None) -> None:
        self.options = options or StackOptions()
        self.run_id = uuid.uuid4().hex[:8]
        self.webhook_token = secrets.token_urlsafe(24)
        self.operator_token = secrets.token_urlsafe(24)
        self.repo = self.options.repo or find_repo_root()
        self._own_work_dir = self.options.work_dir is None
        self.work_dir = (Path(tempfile.mkdtemp(prefix="sre-demo-"))
                         if self.options.work_dir is None else self.options.work_dir)
        self.data_dir = self.options.data_dir or self.work_dir / "data"
        self.database_path = self.data_dir / "agent.db"
        self.targets: list[Target] = []
        self.prometheus: Process | None = None
        self.alertmanager: Process | None = None
        self.agent: Process | None = None
        self.agent_port = free_port()
        self.prometheus_port = free_port()
        self.alertmanager_port = free_port()
        self.image: str = self.options.image
        self.image_built = False
        self.rules: dict[str, Any] = {}
        self.prometheus_binary = ""
        self.alertmanager_binary = ""
        self._docker: Any = None
        self._stopped = False

    # --- URLs (agent, Prometheus, Alertmanager: Monitoring) --------------------------------

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database_path}"

    def target_named(self, suffix: str) -> Target:
        return next(t for t in self.targets if t.spec.suffix == suffix)

    # --- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> DemoStack:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> DemoStack:
        """Start the target container(s), the agent, Alertmanager and Prometheus."""
        try:
            self.prometheus_binary = find_binary(PROMETHEUS_BINARIES,
                                                 self.options.prometheus_binary)
            self.alertmanager_binary = find_binary(ALERTMANAGER_BINARIES,
                                                   self.options.alertmanager_binary)
            self.work_dir.mkdir(parents=True, exist_ok=True)
            self.data_dir.mkdir(parents=True, exist_ok=True)
            if self.options.build_image:
                try:
                    self.image, self.image_built = ensure_target_image(
                        self.docker, self.repo, self.options.image, self.options.base_image)
                except ImageError as exc:
                    raise StackError(str(exc)) from exc
            for spec in self.options.targets:
                self.targets.append(self._run_target(spec))
            self._start_agent_first()
            self._start_alertmanager()
            self._start_prometheus()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop Prometheus, Alertmanager and the agent (by PID) and remove the containers."""
        for proc in (self.prometheus, self.alertmanager, self.agent):
            if proc is not None:
                with contextlib.suppress(Exception):
                    proc.stop()
        if self._docker is not None:
            for target in self.targets:
                with contextlib.suppress(Exception):
                    target.container.remove(force=True, v=True)
            with contextlib.suppress(Exception):  # anything else this run created
                for c in self._docker.containers.list(
                        all=True, filters={"label": [f"{DEMO_LABEL}={self.run_id}"]}):
                    c.remove(force=True, v=True)
            with contextlib.suppress(Exception):
                self._docker.close()
            self._docker = None
        if self._own_work_dir and not self._stopped:
            shutil.rmtree(self.work_dir, ignore_errors=True)
        self._stopped = True

    # --- components -----------------------------------------------------------------------

    def _agent_env(self) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items()
                     if self.options.inherit_env or not k.startswith("SRE_AGENT_")}
        user = {k: v for k, v in inherited.items() if k.startswith("SRE_AGENT_")}
        return {
            **{k: v for k, v in inherited.items() if not k.startswith("SRE_AGENT_")},
            **AGENT_DEFAULTS, **user, **self.options.agent_env,
            "PYTHONUNBUFFERED": "1",
            "SRE_AGENT_HOST": HOST, "SRE_AGENT_PORT": str(self.agent_port),
            "SRE_AGENT_DATABASE_URL": self.database_url,
            "SRE_AGENT_MODE": self.options.mode,
            "SRE_AGENT_WEBHOOK_TOKEN": self.webhook_token,
            "SRE_AGENT_OPERATOR_TOKEN": self.operator_token,
            "SRE_AGENT_PROMETHEUS_URL": self.prometheus_url,
            "SRE_AGENT_ALERTMANAGER_URL": self.alertmanager_url,
        }

    def _start_agent_first(self) -> None:
        for attempt in range(3):
            try:
                self.start_agent()
                return
            except StackError:
                assert self.agent is not None
                if attempt == 2 or "address already in use" not in self.agent.log_tail():
                    raise
                self.agent_port = free_port()  # nothing is configured with it yet

    def start_agent(self, timeout: float | None = None) -> Process:
        """Start the agent (again: same port, same SQLite file) and wait until it is ready."""
        if self.agent is not None and self.agent.alive():
            return self.agent
        cwd = self.options.agent_cwd or self.work_dir
        self.agent = spawn("agent", [sys.executable, "-m", "sre_agent", "serve", "--host", HOST,
                                      "--port", str(self.agent_port)],
                            self.work_dir / "logs" / "agent.log", env=self._agent_env(), cwd=cwd)
        wait_for("agent /ready", lambda: url_ok(f"{self.agent_url}/ready"),
              timeout or self.options.ready_timeout_s, self.agent)
        return self.agent

    def stop_agent(self) -> None:
        """Stop the agent (SIGTERM, by PID); Prometheus and Alertmanager keep running."""
        if self.agent is not None:
            self.agent.stop()


    # --- health -----------------------------------------------------------------------------

    def processes(self) -> list[Process]:
        return [p for p in (self.prometheus, self.alertmanager, self.agent) if p is not None]

    def dead_processes(self) -> list[Process]:
        return [p for p in self.processes() if not p.alive()]

    def wait_healthy(self, timeout: float = 90.0) -> float:
        """Wait until Prometheus has loaded the rules and sees every scraped target up, each
        managed target's HEALTHCHECK says healthy, and the agent is ready. Returns the seconds
        it took."""
        start = time.monotonic()

        def healthy() -> bool:
            if self.dead_processes():
                dead = self.dead_processes()[0]
                raise StackError(f"{dead.name} exited:\n{dead.log_tail()}")
            if not url_ok(f"{self.agent_url}/ready"):
                return False
            try:
                groups = self.prometheus_api("/api/v1/rules")["groups"]
                if not groups:
                    return False
                up = {s["metric"].get("instance"): s["value"][1]
                      for s in self.query("up")}
            except (httpx.HTTPError, KeyError, ValueError):
                return False
            for target in self.targets:
                if target.spec.scrape and up.get(target.instance) != "1":
                    return False
                health = (target.state().get("Health") or {}).get("Status")
                if health != "healthy":
                    return False
            return True

        wait_for("a healthy demo stack", healthy, timeout, interval=0.25)
        return time.monotonic() - start

    # --- the agent's API --------------------------------------------------------------------

    def log_paths(self) -> dict[str, Path]:
        return {p.name: p.log_path for p in self.processes()}

    def describe(self) -> Iterator[tuple[str, str]]:
        """(what, where) pairs for printing."""
        yield "dashboard", f"{self.agent_url}/status"
        yield "agent API", f"{self.agent_url}/docs"
        yield "Prometheus", f"{self.prometheus_url}/alerts"
        yield "Alertmanager", self.alertmanager_url
        for target in self.targets:
            yield f"target {target.name}", target.url
        yield "SQLite", str(self.database_path)
        yield "logs", str(self.work_dir / "logs")
