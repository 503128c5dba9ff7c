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
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import yaml

from sre_agent.demo.configs import (
    EVALUATION_INTERVAL_S,
    GROUP_INTERVAL_S,
    GROUP_WAIT_S,
    SCRAPE_INTERVAL_S,
    fast_alertmanager_config,
    fast_prometheus_config,
    fast_rules,
)
from sre_agent.demo.images import (
    DEFAULT_BASE_IMAGE,
    DEFAULT_TARGET_IMAGE,
    ImageError,
    ensure_target_image,
    find_repo_root,
)
from sre_agent.demo.processes import (
    HOST,
    Process,
    StackError,
    find_binary,
    free_port,
    http_client,
    spawn,
    url_ok,
    wait_for,
    write_private,
)

PROMETHEUS_BINARIES = ("prometheus",)
ALERTMANAGER_BINARIES = ("prometheus-alertmanager", "alertmanager")
TARGET_PORT = 8080
DEMO_LABEL = "sre-agent.demo"
# The demo target: self probe every second (TargetUnhealthy), built-in traffic for the rate
# alerts (HighErrorRate, HighLatency).
DEFAULT_TARGET_ENV: Mapping[str, str] = {"DEMO_SELF_PROBE_INTERVAL_S": "1",
                                         "DEMO_TRAFFIC_RPS": "5"}
# A HEALTHCHECK as fast as the rest (the image's own is 5 s): nanoseconds for the Docker API.
FAST_HEALTHCHECK: Mapping[str, int] = {"interval": 1_000_000_000, "timeout": 2_000_000_000,
                                       "retries": 2, "start_period": 1_000_000_000}
# Agent settings the demo changes from the product defaults (a user's own settings win when
# the environment is inherited): a shorter cooldown and a looser per-target limit, so faults
# can be injected again and again; short evidence timeouts, as the stack is local.
AGENT_DEFAULTS: Mapping[str, str] = {
    "SRE_AGENT_LOG_FORMAT": "json", "SRE_AGENT_LOG_LEVEL": "INFO",
    "SRE_AGENT_COOLDOWN_S": "30", "SRE_AGENT_MAX_ACTIONS_PER_TARGET_PER_HOUR": "20",
    "SRE_AGENT_EVIDENCE_TIMEOUT_S": "2", "SRE_AGENT_VERIFY_DEADLINE_S": "60",
    "SRE_AGENT_DOCKER_STOP_TIMEOUT_S": "5",
}
FAULTS = ("crash", "hang", "errors?rate=0.9", "latency?ms=800", "leak", "clear")


# --- the stack ------------------------------------------------------------------------------

@dataclass(frozen=True)
class TargetSpec:
    """One demo target container. ``managed=False`` leaves out ``sre-agent.managed=true``
    (the agent must never touch it); ``labels=False`` leaves out the discovery labels too.
    ``job``: its scrape job and ``sre-agent.job`` label; None is the stack's target job."""

    suffix: str = "target"
    managed: bool = True
    labels: bool = True
    job: str | None = None
    scrape: bool = True
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StackOptions:
    mode: str = "autonomous"
    work_dir: Path | None = None       # configs, logs, TSDB, secrets; None: a temp dir
    data_dir: Path | None = None       # the agent's SQLite file; None: <work_dir>/data
    repo: Path | None = None           # where monitoring/ and Dockerfile.target are
    image: str = DEFAULT_TARGET_IMAGE
    base_image: str = DEFAULT_BASE_IMAGE
    build_image: bool = True           # build/refresh the image from Dockerfile.target
    prometheus_binary: str | None = None
    alertmanager_binary: str | None = None
    targets: tuple[TargetSpec, ...] = (TargetSpec(),)
    target_env: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_TARGET_ENV))
    agent_env: Mapping[str, str] = field(default_factory=dict)  # wins over the defaults
    inherit_env: bool = False          # pass the caller's SRE_AGENT_* and .env to the agent
    agent_cwd: Path | None = None      # None: the work dir (no stray .env is read)
    scrape_interval_s: int = SCRAPE_INTERVAL_S
    evaluation_interval_s: int = EVALUATION_INTERVAL_S
    group_wait_s: int = GROUP_WAIT_S
    group_interval_s: int = GROUP_INTERVAL_S
    rule_for_s: Mapping[str, int] | None = None  # alert name → `for` seconds
    # The job the targets are scraped under. "target" is the monitoring files' contract; tests
    # use a name of their own (the rules' job="target" matchers are renamed with it), so that
    # no other container on a shared Docker daemon labelled sre-agent.job=target (another
    # test's, a compose demo's) can ever be resolved as this stack's target.
    target_job: str = "target"
    ready_timeout_s: float = 60.0
    log_level: str = "info"            # Prometheus' and Alertmanager's (debug shows each flush)


@dataclass
class Target:
    spec: TargetSpec
    container: Any
    port: int
    job: str

    @property
    def name(self) -> str:
        return str(self.container.name)

    @property
    def instance(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.instance}"

    def attrs(self) -> dict[str, Any]:
        self.container.reload()
        return dict(self.container.attrs)

    def state(self) -> dict[str, Any]:
        return dict(self.attrs().get("State") or {})


class DemoStack:
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

    # --- URLs -----------------------------------------------------------------------------

    @property
    def agent_url(self) -> str:
        return f"http://{HOST}:{self.agent_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{HOST}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{HOST}:{self.alertmanager_port}"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.database_path}"

    @property
    def target(self) -> Target:
        """The first target (the demo's one)."""
        return self.targets[0]

    def target_named(self, suffix: str) -> Target:
        return next(t for t in self.targets if t.spec.suffix == suffix)

    @property
    def docker(self) -> Any:
        if self._docker is None:
            import docker

            try:
                self._docker = docker.from_env(timeout=60)
                self._docker.ping()
            except Exception as exc:  # DockerException, requests' ConnectionError
                self._docker = None
                raise StackError(f"no reachable Docker engine: {exc}") from exc
        return self._docker

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

    def _target_labels(self, spec: TargetSpec, port: int) -> dict[str, str]:
        labels = {DEMO_LABEL: self.run_id}
        if spec.labels:
            labels.update({"sre-agent.job": spec.job or self.options.target_job,
                           "sre-agent.instance": f"{HOST}:{port}",
                           "sre-agent.health-url": f"http://{HOST}:{port}/health"})
        if spec.managed:
            labels["sre-agent.managed"] = "true"
        return labels

    def _run_target(self, spec: TargetSpec) -> Target:
        import docker.errors

        client = self.docker
        last: Exception | None = None
        for _attempt in range(5):  # a free port can be taken between choosing and binding it
            port = free_port()
            try:
                container = client.containers.create(
                    self.image, detach=True, name=f"sre-demo-{self.run_id}-{spec.suffix}",
                    labels=self._target_labels(spec, port),
                    environment={**self.options.target_env, **spec.env},
                    ports={f"{TARGET_PORT}/tcp": (HOST, port)},
                    healthcheck=dict(FAST_HEALTHCHECK))
            except docker.errors.APIError as exc:  # no such image, name taken...
                raise StackError(f"cannot create the target container: {exc}") from exc
            try:
                container.start()
            except docker.errors.APIError as exc:
                last = exc
                with contextlib.suppress(Exception):
                    container.remove(force=True)
                if "allocated" in str(exc) or "in use" in str(exc):
                    continue
                raise StackError(f"cannot start target container: {exc}") from exc
            return Target(spec, container, port, spec.job or self.options.target_job)
        raise StackError(f"cannot publish the target on a free port: {last}")

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

    def _start_alertmanager(self) -> None:
        source = yaml.safe_load((self.repo / "monitoring" / "alertmanager.yml").read_text())
        token_file = self.work_dir / "secrets" / "webhook-token"
        write_private(token_file, self.webhook_token)
        config = fast_alertmanager_config(
            source, webhook_url=f"{self.agent_url}/webhook/alertmanager",
            credentials_file=token_file, group_wait_s=self.options.group_wait_s,
            group_interval_s=self.options.group_interval_s)
        path = self.work_dir / "alertmanager.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        for attempt in range(3):
            self.alertmanager = spawn("alertmanager", [
                self.alertmanager_binary, f"--config.file={path}",
                f"--storage.path={self.work_dir / 'alertmanager-data'}",
                f"--web.listen-address={HOST}:{self.alertmanager_port}",
                f"--web.external-url={self.alertmanager_url}",
                "--cluster.listen-address=", f"--log.level={self.options.log_level}"],
                self.work_dir / "logs" / "alertmanager.log")
            try:
                ready = f"{self.alertmanager_url}/-/ready"
                wait_for("alertmanager /-/ready", functools.partial(url_ok, ready),
                         self.options.ready_timeout_s, self.alertmanager)
                return
            except StackError:
                self.alertmanager.stop()
                if attempt == 2 or "address already in use" not in self.alertmanager.log_tail():
                    raise
                self.alertmanager_port = free_port()  # Prometheus is not configured yet
        # unreachable: the loop returns or raises

    def _start_prometheus(self) -> None:
        rules_source = yaml.safe_load((self.repo / "monitoring" / "alert_rules.yml").read_text())
        rename = {"target": self.options.target_job}
        self.rules = fast_rules(rules_source, self.options.rule_for_s, rename)
        rules_path = self.work_dir / "alert_rules.yml"
        rules_path.write_text(yaml.safe_dump(self.rules, sort_keys=False))
        jobs: dict[str, list[str]] = {}
        for target in self.targets:
            if target.spec.scrape:
                jobs.setdefault(target.job, []).append(target.instance)
        source = yaml.safe_load((self.repo / "monitoring" / "prometheus.yml").read_text())
        path = self.work_dir / "prometheus.yml"
        for attempt in range(3):
            jobs.update({"sre-agent": [f"{HOST}:{self.agent_port}"],
                         "alertmanager": [f"{HOST}:{self.alertmanager_port}"],
                         "prometheus": [f"{HOST}:{self.prometheus_port}"]})
            config = fast_prometheus_config(
                source, jobs=jobs, alertmanager=f"{HOST}:{self.alertmanager_port}",
                rules_path=rules_path, scrape_interval_s=self.options.scrape_interval_s,
                evaluation_interval_s=self.options.evaluation_interval_s, rename=rename)
            path.write_text(yaml.safe_dump(config, sort_keys=False))
            self.prometheus = spawn("prometheus", [
                self.prometheus_binary, f"--config.file={path}",
                f"--storage.tsdb.path={self.work_dir / 'prometheus-data'}",
                f"--web.listen-address={HOST}:{self.prometheus_port}",
                "--storage.tsdb.retention.time=2h", f"--log.level={self.options.log_level}"],
                self.work_dir / "logs" / "prometheus.log")
            try:
                wait_for("prometheus /-/ready", lambda: url_ok(f"{self.prometheus_url}/-/ready"),
                      self.options.ready_timeout_s, self.prometheus)
                return
            except StackError:
                self.prometheus.stop()
                if attempt == 2 or "address already in use" not in self.prometheus.log_tail():
                    raise
                # The agent was told this port: it only loses evidence queries until restarted.
                self.prometheus_port = free_port()

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

    # --- Prometheus, Alertmanager, target ---------------------------------------------------

    def prometheus_api(self, path: str, **params: str) -> Any:
        with http_client() as c:
            r = c.get(f"{self.prometheus_url}{path}", params=params)
            r.raise_for_status()
            return r.json()["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.prometheus_api("/api/v1/query", query=promql)[
            "result"]
        return result

    def prometheus_alerts(self) -> list[dict[str, Any]]:
        """Prometheus' active alerts (pending and firing)."""
        alerts: list[dict[str, Any]] = self.prometheus_api("/api/v1/alerts")["alerts"]
        return alerts

    def alertmanager_metric(self, name: str) -> float:
        """Sum of one metric family on Alertmanager's own /metrics."""
        with http_client() as c:
            text = c.get(f"{self.alertmanager_url}/metrics").text
        total = 0.0
        for line in text.splitlines():
            if line.startswith((name + "{", name + " ")):
                total += float(line.rsplit(" ", 1)[1])
        return total

    def inject_fault(self, fault: str, target: Target | None = None,
                     timeout: float = 5.0) -> float:
        """``POST /fault/<fault>`` (e.g. ``crash``, ``hang``, ``errors?rate=0.9``) on a target;
        returns the Unix time just before the request was sent."""
        target = target or self.target
        at = time.time()
        with http_client() as c:
            r = c.post(f"{target.url}/fault/{fault}", timeout=timeout)
            r.raise_for_status()
        return at

    # --- the agent's API --------------------------------------------------------------------

    def agent_client(self, operator: str = "demo") -> httpx.Client:
        """An HTTP client for the agent's operator API (bearer operator token)."""
        return httpx.Client(base_url=self.agent_url, timeout=15.0, trust_env=False,
                            headers={"Authorization": f"Bearer {self.operator_token}",
                                     "X-Operator": operator})

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.agent_client() as c:
            r = c.request(method, path, **kwargs)
            r.raise_for_status()
            return r.json()

    def events(self, *, types: list[str] | None = None,
               incident: str | None = None) -> list[dict[str, Any]]:
        """The agent's event log (all pages), optionally filtered."""
        items: list[dict[str, Any]] = []
        since = 0
        params: dict[str, Any] = {"limit": 1000}
        if types:
            params["type"] = types
        if incident:
            params["incident"] = incident
        while True:
            page = self.api("GET", "/audit", params={**params, "since_seq": since})
            items.extend(page["items"])
            if page["next_since_seq"] is None:
                return items
            since = int(page["next_since_seq"])

    def incidents(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.api("GET", "/incidents", params={"limit": 500})[
            "items"]
        return result

    def actions(self, incident: str | None = None,
                status: str | None = None) -> list[dict[str, Any]]:
        params = {k: v for k, v in (("incident", incident), ("status", status)) if v}
        result: list[dict[str, Any]] = self.api("GET", "/actions",
                                                params={**params, "limit": 1000})
        return result

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
