"""What a demo stack is made of: its options, its target containers, the settings it changes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sre_agent.demo.configs import (
    EVALUATION_INTERVAL_S,
    GROUP_INTERVAL_S,
    GROUP_WAIT_S,
    SCRAPE_INTERVAL_S,
)
from sre_agent.demo.images import DEFAULT_BASE_IMAGE, DEFAULT_TARGET_IMAGE
from sre_agent.demo.processes import HOST

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
    "SRE_AGENT_VERIFY_STABLE_S": "10",
    "SRE_AGENT_DOCKER_STOP_TIMEOUT_S": "5",
}
FAULTS = ("crash", "hang", "errors?rate=0.9", "latency?ms=800", "leak", "clear")



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


