"""docker-compose.yml: its contract with the configs, the images and the agent's settings
(parsed with PyYAML), `docker-compose config`, and an offline run of the file for real.

The offline run keeps every service definition (commands, entrypoints, mounts, tmpfs,
environment, labels, networks) and swaps only what this machine cannot have: images from a
registry become the local Python base with Debian's prometheus / prometheus-alertmanager
binaries mounted in, the agent is the real agent image built offline from the local base
(tests/support/agent_image.py, the README's wheelhouse step), and host ports become ephemeral.
The run closes the loop: a crash of the target, TargetDown through Prometheus and Alertmanager,
the agent starts the container again, verifies it and closes the incident on `resolved`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from demo_target.app import DemoConfig
from sre_agent.config import LLMSettings, Settings
from tests.support.agent_image import build_agent_image
from tests.support.components import require_binary, require_docker
from tests.support.docker_helpers import docker_client

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
COMPOSE_TEXT = (REPO / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, Any] = COMPOSE["services"]
ENV_EXAMPLE = (REPO / ".env.example").read_text()
BASE_IMAGE = os.environ.get("SRE_AGENT_PYTHON_BASE_IMAGE", "sre-agent/python-base:bookworm")
REQUIRED_ENV = {"SRE_AGENT_WEBHOOK_TOKEN": "hook-token-0123456789",
                "SRE_AGENT_OPERATOR_TOKEN": "operator-token-0123456789",
                "DOCKER_GID": "0"}


def monitoring(name: str) -> Any:
    return yaml.safe_load((REPO / "monitoring" / name).read_text())


def container_port(mapping: str) -> int:
    return int(mapping.rsplit(":", 1)[1])


def environment(service: str) -> dict[str, Any]:
    env = SERVICES[service].get("environment") or {}
    assert isinstance(env, dict), "use the mapping form for environment"
    return env


def bind_mounts(service: str) -> dict[str, str]:
    """container path -> host path, for the short-syntax bind mounts of a service."""
    mounts = {}
    for spec in SERVICES[service].get("volumes", []):
        parts = spec.split(":")
        if parts[0].startswith(("./", "/")):
            mounts[parts[1]] = parts[0]
    return mounts


def prometheus_jobs() -> dict[str, list[str]]:
    return {j["job_name"]: j["static_configs"][0]["targets"]
            for j in monitoring("prometheus.yml")["scrape_configs"]}


# --- structure and files ------------------------------------------------------------------------

SINGLE = {"prometheus", "alertmanager", "agent"}
REPLICAS = {"postgres", "prometheus-ha", "alertmanager-1", "alertmanager-2", "agent-1", "agent-2"}


def test_services_and_referenced_files_exist() -> None:
    assert set(SERVICES) == {"target"} | SINGLE | REPLICAS
    profiles = {name: tuple(service.get("profiles") or ()) for name, service in SERVICES.items()}
    assert profiles == {"target": (), **{n: ("single",) for n in SINGLE},
                        **{n: ("replicas",) for n in REPLICAS}}
    assert re.search(r"^COMPOSE_PROFILES=single$", ENV_EXAMPLE, re.M)  # `up` = as before
    for name, service in SERVICES.items():
        build = service.get("build")
        if build:
            assert (REPO / build["context"] / build["dockerfile"]).is_file(), name
            assert "BASE_IMAGE" in build["args"], name
        for host_path in bind_mounts(name).values():
            if host_path.startswith("./"):
                assert (REPO / host_path).is_file(), f"{name}: {host_path}"
            else:
                assert host_path == "/var/run/docker.sock", f"{name}: {host_path}"
    for dockerfile in ("Dockerfile.target", "Dockerfile.postgres"):
        assert (REPO / dockerfile).read_text().count("ARG BASE_IMAGE=") == 1


def test_only_pinned_official_images_are_pulled() -> None:
    assert SERVICES["prometheus"]["image"] == "prom/prometheus:v2.42.0"
    assert SERVICES["alertmanager"]["image"] == "prom/alertmanager:v0.25.0"
    assert "build" in SERVICES["target"] and "build" in SERVICES["agent"]
    for name in ("prometheus-ha", "alertmanager-1", "alertmanager-2"):
        assert SERVICES[name]["image"] == SERVICES[name.split("-")[0]]["image"], name
    assert "build" in SERVICES["postgres"] and "build" in SERVICES["agent-1"]
    assert SERVICES["agent-2"]["image"] == SERVICES["agent-1"]["image"]


# --- the agent's environment against its Settings and .env.example -------------------------------

def _setting_exists(var: str) -> bool:
    name = var.removeprefix("SRE_AGENT_").lower()
    if "__" in name:
        outer, inner = name.split("__", 1)
        return outer == "llm" and inner in LLMSettings.model_fields
    return name in Settings.model_fields


def test_every_sre_agent_variable_is_a_real_setting_listed_in_env_example() -> None:
    used = set(environment("agent")) | set(re.findall(r"\$\{(SRE_AGENT_\w+?)(?::?[?-]|\})",
                                                      COMPOSE_TEXT))
    for service in SERVICES:
        used |= {k for k in environment(service) if k.startswith("SRE_AGENT_")}
    assert "SRE_AGENT_WEBHOOK_TOKEN" in used and "SRE_AGENT_MODE" in used
    for var in sorted(used):
        assert _setting_exists(var), f"{var} is not a field of sre_agent.config.Settings"
        assert re.search(rf"^#?\s*{var}=", ENV_EXAMPLE, re.M), f"{var} missing in .env.example"


def test_agent_environment_makes_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in environment("agent").items():
        value = REQUIRED_ENV.get(key, value)
        if isinstance(value, str) and value.startswith("${"):
            value = REQUIRED_ENV[key]
        if value is not None:  # null = passed through from .env when set
            monkeypatch.setenv(key, str(value))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.mode.value == "autonomous"
    assert settings.host == "0.0.0.0" and settings.webhook_token is not None
    assert settings.prometheus_url == "http://prometheus:9090"
    assert settings.alertmanager_url == "http://alertmanager:9093"
    assert settings.database_url.startswith("sqlite:////var/lib/sre-agent/")
    agent_volumes = SERVICES["agent"]["volumes"]
    assert any(v.endswith(":/var/lib/sre-agent") for v in agent_volumes)
    assert "/var/run/docker.sock:/var/run/docker.sock" in agent_volumes
    assert "${DOCKER_GID:?" in SERVICES["agent"]["group_add"][0]


def test_tokens_are_required_not_defaulted() -> None:
    env = environment("agent")
    for var in ("SRE_AGENT_WEBHOOK_TOKEN", "SRE_AGENT_OPERATOR_TOKEN"):
        assert env[var].startswith(f"${{{var}:?"), var
    assert environment("alertmanager")["WEBHOOK_TOKEN"].startswith(
        "${SRE_AGENT_WEBHOOK_TOKEN:?")


# --- ports, host names and labels agree with the configs -----------------------------------------

def test_ports_agree_with_the_configs() -> None:
    for name, service in SERVICES.items():
        for mapping in service.get("ports", []):
            assert mapping.startswith("127.0.0.1:"), f"{name} publishes {mapping} beyond loopback"

    (target_port,) = [container_port(p) for p in SERVICES["target"]["ports"]]
    demo = DemoConfig.from_env({k: str(v) for k, v in environment("target").items()})
    (scrape,) = prometheus_jobs()["target"]
    assert target_port == demo.port == 8080 == int(scrape.rsplit(":", 1)[1])
    assert "EXPOSE 8080" in (REPO / "Dockerfile.target").read_text()

    (agent_port,) = [container_port(p) for p in SERVICES["agent"]["ports"]]
    hook = monitoring("alertmanager.yml")["receivers"][0]["webhook_configs"][0]["url"]
    assert agent_port == int(environment("agent")["SRE_AGENT_PORT"]) == urlsplit(hook).port
    assert agent_port == Settings(_env_file=None).port  # type: ignore[call-arg]
    assert prometheus_jobs()["sre-agent"] == [f"agent:{agent_port}"]
    assert "EXPOSE 8001" in (REPO / "Dockerfile").read_text()

    am_port = container_port(SERVICES["alertmanager"]["ports"][0])
    alerting = monitoring("prometheus.yml")["alerting"]["alertmanagers"][0]
    assert alerting["static_configs"][0]["targets"] == [f"alertmanager:{am_port}"]
    assert urlsplit(environment("agent")["SRE_AGENT_ALERTMANAGER_URL"]).port == am_port
    prom_port = container_port(SERVICES["prometheus"]["ports"][0])
    assert urlsplit(environment("agent")["SRE_AGENT_PROMETHEUS_URL"]).port == prom_port


def test_host_names_in_the_configs_are_compose_services() -> None:
    hosts = {t.split(":")[0] for targets in prometheus_jobs().values() for t in targets}
    assert hosts - {"localhost"} <= set(SERVICES)
    hook = monitoring("alertmanager.yml")["receivers"][0]["webhook_configs"][0]["url"]
    assert urlsplit(hook).hostname in SERVICES
    for var in ("SRE_AGENT_PROMETHEUS_URL", "SRE_AGENT_ALERTMANAGER_URL"):
        assert urlsplit(environment("agent")[var]).hostname in SERVICES


def test_target_labels_agree_with_the_agent_and_prometheus() -> None:
    labels = SERVICES["target"]["labels"]
    key, value = Settings(_env_file=None).scope_label.split("=", 1)  # type: ignore[call-arg]
    assert labels[key] == value
    job = labels["sre-agent.job"]
    assert prometheus_jobs()[job] == ["target:8080"]
    rules = [r for g in monitoring("alert_rules.yml")["groups"] for r in g["rules"]]
    target_down = next(r for r in rules if r["alert"] == "TargetDown")
    assert f'job="{job}"' in target_down["expr"]
    health = urlsplit(labels["sre-agent.health-url"])
    assert (health.hostname, health.port, health.path) == ("target", 8080, "/health")
    assert "restart" not in SERVICES["target"]  # bringing it back is the agent's job
    assert "sre-agent.managed" not in (SERVICES["agent"].get("labels") or {})


def test_mounted_configs_land_where_the_commands_and_configs_expect() -> None:
    prom = bind_mounts("prometheus")
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    assert prom["/etc/prometheus/prometheus.yml"] == "./monitoring/prometheus.yml"
    for rule_file in monitoring("prometheus.yml")["rule_files"]:  # relative to the config
        assert prom[f"/etc/prometheus/{rule_file}"] == f"./monitoring/{rule_file}"

    am = bind_mounts("alertmanager")
    assert am["/etc/alertmanager/alertmanager.yml"] == "./monitoring/alertmanager.yml"
    (script,) = SERVICES["alertmanager"]["command"]
    assert "--config.file=/etc/alertmanager/alertmanager.yml" in script
    auth = monitoring("alertmanager.yml")["receivers"][0]["webhook_configs"][0]["http_config"]
    token_file = auth["authorization"]["credentials_file"]
    assert f'"$$WEBHOOK_TOKEN" > {token_file}' in script
    assert str(Path(token_file).parent) in SERVICES["alertmanager"]["tmpfs"]


# --- docker-compose config -----------------------------------------------------------------

def _compose_binary() -> str:
    return require_binary("docker-compose")


def _run_compose(args: list[str], env_file: Path, extra_env: dict[str, str],
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SRE_AGENT_") and k not in ("DOCKER_GID", "PYTHON_BASE_IMAGE")}
    return subprocess.run([_compose_binary(), "--env-file", str(env_file), *args],
                          cwd=REPO, env={**env, **extra_env}, capture_output=True, text=True,
                          timeout=timeout, check=False)


def test_docker_compose_config_passes_with_the_required_variables(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"  # a developer's .env must not hide a missing variable
    empty.write_text("")
    ok = _run_compose(["-f", "docker-compose.yml", "config", "-q"], empty, REQUIRED_ENV)
    assert ok.returncode == 0, ok.stderr
    for missing in REQUIRED_ENV:
        env = {k: v for k, v in REQUIRED_ENV.items() if k != missing}
        bad = _run_compose(["-f", "docker-compose.yml", "config", "-q"], empty, env)
        assert bad.returncode != 0 and missing in bad.stderr, (missing, bad.stderr)


# --- the file, run for real offline --------------------------------------------------------------

def offline_compose(agent_image: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
    s = doc["services"]
    s["target"]["image"] = "sre-agent/demo-target:compose-test"
    s["target"]["ports"] = ["127.0.0.1::8080"]

    s["prometheus"].update(image=BASE_IMAGE, entrypoint=["/bin/prometheus"], user="root",
                           ports=["127.0.0.1::9090"], restart="no")
    s["prometheus"]["volumes"].append("/usr/bin/prometheus:/bin/prometheus:ro")

    am = s["alertmanager"]  # same entrypoint and command; `nobody` as in the official image
    am.update(image=BASE_IMAGE, user="nobody", ports=["127.0.0.1::9093"], restart="no")
    am["volumes"] = [v for v in am["volumes"] if not v.startswith("alertmanager-data:")]
    am["volumes"] += ["/usr/bin/prometheus-alertmanager:/bin/alertmanager:ro",
                      # Debian's binary reads its default template from here
                      "/usr/share/prometheus/alertmanager:/usr/share/prometheus/alertmanager:ro"]
    # the official image's data dir is nobody's (a new list: YAML anchors share the old one)
    am["tmpfs"] = [*am["tmpfs"], "/alertmanager"]

    agent = s["agent"]  # the real agent, every setting as in the file; only the image is local
    del agent["build"]
    agent.update(image=agent_image, ports=["127.0.0.1::8001"], restart="no")
    return doc


class Stack:
    def __init__(self, tmp_path: Path, agent_image: str) -> None:
        self.project = f"sretest{uuid.uuid4().hex[:8]}"
        self.file = tmp_path / "docker-compose.yml"
        self.file.write_text(yaml.safe_dump(offline_compose(agent_image), sort_keys=False))
        self.env_file = tmp_path / "compose.env"
        # The agent runs as a non-root user: it reaches the socket through its group.
        env = {**REQUIRED_ENV, "DOCKER_GID": str(os.stat("/var/run/docker.sock").st_gid)}
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        self.extra_env = {"PYTHON_BASE_IMAGE": BASE_IMAGE}

    profile = "single"

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        result = _run_compose(["--project-directory", str(REPO), "-f", str(self.file),
                               "-p", self.project, "--profile", self.profile, *args],
                              self.env_file, self.extra_env, timeout=timeout)
        if check:
            assert result.returncode == 0, f"docker-compose {args}: {result.stderr[-2000:]}"
        return result.stdout

    def url(self, service: str, port: int) -> str:
        host_port = self.run("port", service, str(port)).strip().rsplit(":", 1)[1]
        return f"http://127.0.0.1:{host_port}"


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    _compose_binary()
    require_docker()
    for binary in ("prometheus", "prometheus-alertmanager"):
        require_binary(binary)
    tag, _seconds = build_agent_image(docker_client())
    s = Stack(tmp_path, tag)
    try:
        s.run("up", "-d", "--build", timeout=600)
        yield s
    finally:
        s.run("down", "-v", "--remove-orphans", "-t", "2", check=False)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=3) as resp:
        body = resp.read()
        return json.loads(body) if "json" in resp.headers.get("Content-Type", "") else body


def _poll(what: str, fn: Any, timeout: float, stack: Stack) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
            if last:
                return last
        except (OSError, ValueError, KeyError, urllib.error.URLError) as exc:
            last = exc
        time.sleep(0.5)
    logs = stack.run("logs", "--tail", "30", check=False)
    raise AssertionError(f"{what} not within {timeout}s (last: {last!r})\n{logs[-4000:]}")


def test_the_stack_closes_the_loop_with_the_real_agent_image(stack: Stack) -> None:
    target = stack.url("target", 8080)
    prom = stack.url("prometheus", 9090)
    _poll("target /health", lambda: _get(f"{target}/health") == b"ok\n", 60, stack)

    def all_jobs_up() -> bool:
        result = _get(f"{prom}/api/v1/query?query=up")["data"]["result"]
        return {r["metric"]["job"]: r["value"][1] for r in result} == {
            "target": "1", "sre-agent": "1", "alertmanager": "1", "prometheus": "1"}
    _poll("all four jobs scraped over the compose network", all_jobs_up, 60, stack)
    groups = _get(f"{prom}/api/v1/rules")["data"]["groups"]
    assert sum(len(g["rules"]) for g in groups) == 6

    token_file = stack.run("exec", "-T", "alertmanager", "stat", "-c", "%a %U",
                           "/etc/alertmanager/webhook-token").strip()
    assert token_file == "600 nobody"

    request = urllib.request.Request(f"{target}/fault/crash", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200

    operator = {"Authorization": f"Bearer {REQUIRED_ENV['SRE_AGENT_OPERATOR_TOKEN']}"}
    agent = stack.url("agent", 8001)

    def agent_get(path: str) -> Any:
        req = urllib.request.Request(f"{agent}{path}", headers=operator)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def recovered() -> dict[str, Any] | None:
        for action in agent_get("/actions"):
            if action["kind"] in ("start_container", "restart_container") and (
                    action["status"] == "verified"):
                return dict(action)
        return None
    action = _poll("the agent starts the crashed target and verifies it", recovered, 180, stack)
    assert action["target"].endswith("target_1") or "target" in action["target"]

    container_id = stack.run("ps", "-q", "target").strip()
    state = json.loads(subprocess.run(["docker", "inspect", container_id], capture_output=True,
                                      text=True, check=True).stdout)[0]
    assert state["State"]["Status"] == "running"
    assert state["Config"]["Labels"]["sre-agent.managed"] == "true"
    target = stack.url("target", 8080)  # a started container gets a new ephemeral host port
    _poll("target /health after the agent's start", lambda: _get(f"{target}/health") == b"ok\n",
          60, stack)

    def closed() -> bool:
        incident = agent_get(f"/incidents/{action['incident_id']}")
        return bool(incident["status"] == "resolved")
    _poll("Alertmanager's `resolved` closes the incident", closed, 120, stack)
    incident = agent_get(f"/incidents/{action['incident_id']}")
    assert "TargetDown" in incident["title"]
    types = [e["type"] for e in incident["events"]]
    assert types.count("ActionStarted") == 1  # exactly once
    assert agent_get("/audit/verify")["ok"] is True
