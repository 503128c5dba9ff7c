"""A sample of the public corpus through the real agent: webhook in, real Docker target
resolution and evidence on a real, running busybox container, rules, safety gate in approval
mode. Each alert is about that in-scope container, as in the corpus test; here the evidence
comes from the Docker engine instead of a fake."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.bootstrap import build_services
from tests.conftest import make_settings
from tests.corpus.harness import load_rules
from tests.support.docker_helpers import (  # noqa: F401 (fixtures)
    ContainerJanitor,
    client_fixture,
    docker_client,
    janitor_fixture,
)
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
URL = "/webhook/alertmanager"
LOOP = ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]
CONTAINER_ACTIONS = {"restart_container", "start_container"}

# (collection, alertname, category, container action proposed?)
SAMPLE = [
    ("awesome-prometheus-alerts", "HostOutOfDiskSpace", "capacity", False),
    ("awesome-prometheus-alerts", "BlackboxSSLCertificateWillExpireSoon", "security", False),
    ("awesome-prometheus-alerts", "HostClockSkew", "configuration", False),
    ("awesome-prometheus-alerts", "MySQLDown", "availability", False),  # stateful and running
    ("awesome-prometheus-alerts", "PostgresqlReplicationLag", "latency", False),
    ("awesome-prometheus-alerts", "RedisTooManyConnections", "saturation", False),
    ("awesome-prometheus-alerts", "HAProxyDown", "availability", True),  # stateless, down
    ("kube-prometheus", "KubePodCrashLooping", "availability", False),  # not a Docker object
    ("kube-prometheus", "NodeNetworkReceiveErrs", "errors", False),
    ("awesome-prometheus-alerts", "JenkinsLastBuildFailed", "errors", False),  # classifier
    ("monitoring-mixins", "HighRejectedSessionsForDeployment", "errors", False),  # round 2
    ("monitoring-mixins", "CephFilesystemReadOnly", "availability", False),  # stateful
]




def payload(rule: dict[str, Any], container: str, i: int) -> dict[str, Any]:
    labels = {**rule["labels"], "container": container, "job": "app",
              "instance": "127.0.0.1:9"}
    return notification([alert(name=rule["alertname"], fingerprint=f"corpus{i:04d}",
                               labels=labels, annotations=rule["annotations"],
                               expr=rule["expr"])], group_key=f"corpus-{i}")


async def test_corpus_sample_through_the_agent(tmp_path: Path,
                                               janitor: ContainerJanitor) -> None:
    box = janitor.run_busybox(LOOP, prefix="corpus", labels={"sre-agent.managed": "true"})
    rules = {(r["collection"], r["alertname"]): r for r in load_rules()}
    settings = make_settings(tmp_path, mode="approval")
    services = build_services(settings)
    app = create_app(settings, services=services)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        sent = []
        for i, (collection, name, category, restart) in enumerate(SAMPLE):
            r = await c.post(URL, json=payload(rules[(collection, name)], box.name, i))
            assert r.status_code == 200, r.text
            sent.append((r.json()["incidents"][0], name, category, restart))
        await services.runner.wait_idle(120)
        for incident, name, category, restart in sent:
            detail = (await c.get(f"/incidents/{incident}")).json()
            diag = next(e["data"] for e in detail["events"] if e["type"] == "DiagnosisProduced")
            assert diag["category"] == category, (name, diag)
            assert diag["summary"] and diag.get("match_reason"), (name, diag)
            assert any(box.name in line for line in diag["evidence"]), (name, diag["evidence"])
            kinds = {a["kind"] for a in (await c.get("/actions",
                                                      params={"incident": incident})).json()}
            assert bool(kinds & CONTAINER_ACTIONS) is restart, (name, kinds)
    box.reload()
    assert box.status == "running"  # approval mode: nothing was executed
