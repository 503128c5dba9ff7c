"""docker-compose.yml's `replicas` profile: two agents on one PostgreSQL behind an Alertmanager
pair in a gossip cluster. Its contract with monitoring/*-ha.yml and the agent's settings,
`promtool`/`amtool`/`docker-compose config`, and an offline run of the profile for real (the
same swaps as tests/integration/test_compose.py; PostgreSQL is Dockerfile.postgres on the local
Debian base): a crash of the target is one incident, one start of the container, verified,
and /status of either replica lists both."""

from __future__ import annotations

import json
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from sre_agent.config import Role, Settings
from tests.integration.test_compose import (
    BASE_IMAGE,
    COMPOSE_TEXT,
    REQUIRED_ENV,
    SERVICES,
    Stack,
    _compose_binary,
    _get,
    _poll,
    _run_compose,
    environment,
    monitoring,
    offline_compose,
)
from tests.support.agent_image import build_agent_image
from tests.support.components import require_binary, require_docker
from tests.support.docker_helpers import docker_client

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
AGENTS = ("agent-1", "agent-2")
PAIR = ("alertmanager-1", "alertmanager-2")
REPLICA_ENV = {**REQUIRED_ENV, "POSTGRES_PASSWORD": "pgpass0123456789"}


def _resolved(value: str, env: dict[str, str]) -> str:
    for key, val in env.items():
        value = value.replace(f"${{{key}:-}}", val).replace(f"${{{key}}}", val)
    return value


def test_both_alertmanagers_gossip_and_send_to_both_replicas() -> None:
    port = Settings(_env_file=None).port  # type: ignore[call-arg]
    hooks = [h["url"] for h in monitoring("alertmanager-ha.yml")["receivers"][0]
             ["webhook_configs"]]
    assert hooks == [f"http://{a}:{port}/webhook/alertmanager" for a in AGENTS]
    for name, peer in (PAIR, PAIR[::-1]):
        (script,) = SERVICES[name]["command"]
        assert f"--cluster.peer={peer}:9094" in script
        assert "--cluster.listen-address=0.0.0.0:9094" in script
        assert "./monitoring/alertmanager-ha.yml:/etc/alertmanager/alertmanager.yml:ro" in (
            SERVICES[name]["volumes"])
    prom = monitoring("prometheus-ha.yml")
    assert prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        f"{a}:9093" for a in PAIR]
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in prom["scrape_configs"]}
    assert jobs["sre-agent"] == [f"{a}:{port}" for a in AGENTS]
    assert jobs["target"] == monitoring("prometheus.yml")["scrape_configs"][0][
        "static_configs"][0]["targets"]
    assert prom["rule_files"] == monitoring("prometheus.yml")["rule_files"]


def test_the_replicas_share_one_postgresql_database(monkeypatch: pytest.MonkeyPatch) -> None:
    pg = environment("postgres")
    for agent in AGENTS:
        env = environment(agent)
        url = _resolved(env["SRE_AGENT_DATABASE_URL"], REPLICA_ENV)
        parts = urlsplit(url)
        assert parts.scheme == "postgresql+psycopg" and parts.hostname == "postgres"
        assert (parts.username, parts.password, parts.path) == (
            pg["POSTGRES_USER"], REPLICA_ENV["POSTGRES_PASSWORD"], f"/{pg['POSTGRES_DB']}")
        assert urlsplit(env["SRE_AGENT_PROMETHEUS_URL"]).hostname == "prometheus-ha"
        assert urlsplit(env["SRE_AGENT_ALERTMANAGER_URL"]).hostname in PAIR
        for key, value in env.items():
            value = REQUIRED_ENV.get(key, value)
            if value is not None:
                monkeypatch.setenv(key, _resolved(str(value), REPLICA_ENV))
        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        assert settings.on_postgresql and settings.role is Role.ALL
        assert settings.role_error() is None
        assert any(v.startswith("/var/run/docker.sock:") for v in SERVICES[agent]["volumes"])
    assert environment("agent-1") == environment("agent-2")
    assert "${POSTGRES_PASSWORD" in COMPOSE_TEXT and "POSTGRES_PASSWORD=" not in COMPOSE_TEXT


def test_ha_configs_pass_promtool_and_amtool(tmp_path: Path) -> None:
    out = _tool(require_binary("promtool"), "check", "config",
                str(REPO / "monitoring" / "prometheus-ha.yml"))
    assert "1 rule files found" in out and "6 rules found" in out
    (tmp_path / "webhook-token").write_text("a-real-token-1234")
    text = (REPO / "monitoring" / "alertmanager-ha.yml").read_text().replace(
        "/etc/alertmanager/webhook-token", str(tmp_path / "webhook-token"))
    (tmp_path / "am.yml").write_text(text)
    out = _tool(require_binary("amtool"), "check-config", str(tmp_path / "am.yml"))
    assert "SUCCESS" in out and "1 receivers" in out


def _tool(*argv: str) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_docker_compose_config_passes_for_the_replicas_profile(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    ok = _run_compose(["-f", "docker-compose.yml", "--profile", "replicas", "config"], empty,
                      REPLICA_ENV)
    assert ok.returncode == 0, ok.stderr
    doc = yaml.safe_load(ok.stdout)
    assert set(doc["services"]) >= {"target", *AGENTS, *PAIR, "postgres", "prometheus-ha"}
    ports = {name: [p["published"] if isinstance(p, dict) else p
                    for p in svc.get("ports", [])] for name, svc in doc["services"].items()}
    published = [str(p) for name in AGENTS for p in ports[name]]
    assert len(set(published)) == 2  # two replicas, two host ports


# --- the profile, run for real offline --------------------------------------------------------

def offline_replicas(agent_image: str) -> dict[str, Any]:
    doc = offline_compose(agent_image)
    s = doc["services"]
    s["prometheus-ha"].update(image=BASE_IMAGE, entrypoint=["/bin/prometheus"], user="root",
                              ports=["127.0.0.1::9090"], restart="no")
    s["prometheus-ha"]["volumes"].append("/usr/bin/prometheus:/bin/prometheus:ro")
    for name in PAIR:
        am = s[name]
        am.update(image=BASE_IMAGE, user="nobody", ports=["127.0.0.1::9093"], restart="no")
        am["volumes"] = [v for v in am["volumes"] if not v.startswith("alertmanager-")]
        am["volumes"] += ["/usr/bin/prometheus-alertmanager:/bin/alertmanager:ro",
                          "/usr/share/prometheus/alertmanager:"
                          "/usr/share/prometheus/alertmanager:ro"]
        am["tmpfs"] = [*am["tmpfs"], "/alertmanager"]
    for name in AGENTS:
        s[name].pop("build", None)
        s[name].update(image=agent_image, ports=["127.0.0.1::8001"], restart="no")
    s["postgres"]["image"] = "sre-agent/postgres:compose-test"
    s["postgres"]["restart"] = "no"
    return doc


class ReplicaStack(Stack):
    profile = "replicas"

    def __init__(self, tmp_path: Path, agent_image: str) -> None:
        super().__init__(tmp_path, agent_image)
        self.file.write_text(yaml.safe_dump(offline_replicas(agent_image), sort_keys=False))
        self.env_file.write_text(self.env_file.read_text()
                                 + f"POSTGRES_PASSWORD={REPLICA_ENV['POSTGRES_PASSWORD']}\n")


@pytest.fixture
def replica_stack(tmp_path: Path) -> Iterator[ReplicaStack]:
    _compose_binary()
    require_docker()
    for binary in ("prometheus", "prometheus-alertmanager"):
        require_binary(binary)
    tag, _seconds = build_agent_image(docker_client())
    s = ReplicaStack(tmp_path, tag)
    try:
        s.run("up", "-d", "--build", timeout=900)
        yield s
    finally:
        s.run("down", "-v", "--remove-orphans", "-t", "2", check=False)


def test_the_replicas_profile_restarts_a_crashed_target_once(
        replica_stack: ReplicaStack) -> None:
    stack = replica_stack
    operator = {"Authorization": f"Bearer {REQUIRED_ENV['SRE_AGENT_OPERATOR_TOKEN']}"}
    agents = {name: stack.url(name, 8001) for name in AGENTS}

    def agent_get(name: str, path: str) -> Any:
        req = urllib.request.Request(f"{agents[name]}{path}", headers=operator)
        with urllib.request.urlopen(req, timeout=5) as resp:
            return json.loads(resp.read())

    def both_listed() -> list[dict[str, Any]] | None:
        rows = agent_get("agent-1", "/status")["replicas"]
        live = [r for r in rows if not r["stale"]]
        return rows if len(live) == 2 else None
    replicas = _poll("both replicas heartbeating on one database", both_listed, 120, stack)
    assert {r["role"] for r in replicas} == {"all"}
    assert [r["id"] for r in agent_get("agent-2", "/status")["replicas"]] == [
        r["id"] for r in replicas]

    am = stack.url("alertmanager-1", 9093)
    _poll("the Alertmanager pair gossiping",
          lambda: len(_get(f"{am}/api/v2/status")["cluster"]["peers"]) == 2, 60, stack)
    target = stack.url("target", 8080)
    _poll("target /health", lambda: _get(f"{target}/health") == b"ok\n", 60, stack)
    prom = stack.url("prometheus-ha", 9090)

    def scraped() -> bool:
        result = _get(f"{prom}/api/v1/query?query=up")["data"]["result"]
        ups = [(r["metric"]["job"], r["value"][1]) for r in result]
        return sorted(ups).count(("sre-agent", "1")) == 2 and ("target", "1") in ups
    _poll("both agents and the target scraped", scraped, 60, stack)

    request = urllib.request.Request(f"{target}/fault/crash", method="POST", data=b"")
    with urllib.request.urlopen(request, timeout=5) as resp:
        assert resp.status == 200

    def recovered() -> dict[str, Any] | None:
        for action in agent_get("agent-2", "/actions"):
            if action["kind"] in ("start_container", "restart_container") and (
                    action["status"] == "verified"):
                return dict(action)
        return None
    action = _poll("a replica starts the crashed target and verifies it", recovered, 240, stack)
    incident = agent_get("agent-1", f"/incidents/{action['incident_id']}")
    types = [e["type"] for e in incident["events"]]
    assert types.count("ActionStarted") == 1  # exactly once across both replicas
    assert types.count("DiagnosisProduced") == 1
    assert agent_get("agent-1", "/audit/verify")["ok"] is True
    container_id = stack.run("ps", "-q", "target").strip()
    state = json.loads(subprocess.run(["docker", "inspect", container_id], capture_output=True,
                                      text=True, check=True).stdout)[0]
    assert state["State"]["Status"] == "running"
