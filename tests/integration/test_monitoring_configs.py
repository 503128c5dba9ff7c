"""monitoring/: checked by the real promtool and amtool, the alert rules unit-tested with
`promtool test rules`, then run for real: Prometheus evaluating these rules against the real
demo target, and Alertmanager delivering to a webhook with the bearer token from its file."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from demo_target.app import DemoApp, DemoConfig
from demo_target.traffic import SelfProbe, TrafficGenerator
from sre_agent.config import Settings
from tests.support.alertmanager import post_alerts, running_alertmanager
from tests.support.components import require_binary
from tests.support.prometheus import http_get_json, running_prometheus, wait_for_value

pytestmark = pytest.mark.integration

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
EXPECTED_ALERTS = {"TargetDown", "TargetUnhealthy", "HighErrorRate", "HighLatency",
                   "HighMemoryGrowth", "SreAgentDown"}


def run_tool(*args: str) -> str:
    result = subprocess.run(list(args), capture_output=True, text=True, timeout=60,
                            check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def load(name: str) -> Any:
    return yaml.safe_load((MONITORING / name).read_text())


# --- static checks ------------------------------------------------------------------------------

def test_prometheus_config_passes_promtool_and_finds_its_rules() -> None:
    out = run_tool(require_binary("promtool"), "check", "config",
                   str(MONITORING / "prometheus.yml"))
    assert "1 rule files found" in out and "6 rules found" in out


def test_alert_rules_pass_promtool() -> None:
    out = run_tool(require_binary("promtool"), "check", "rules",
                   str(MONITORING / "alert_rules.yml"))
    assert "SUCCESS: 6 rules found" in out


def test_alert_rules_unit_tests_pass() -> None:
    out = run_tool(require_binary("promtool"), "test", "rules",
                   str(MONITORING / "alert_rules_test.yml"))
    assert "SUCCESS" in out


def test_every_rule_has_severity_summary_and_description() -> None:
    rules = [r for g in load("alert_rules.yml")["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} == EXPECTED_ALERTS
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]


def test_prometheus_config_contract() -> None:
    config = load("prometheus.yml")
    jobs = {j["job_name"]: j["static_configs"][0]["targets"] for j in config["scrape_configs"]}
    assert jobs == {"target": ["target:8080"], "sre-agent": ["agent:8001"],
                    "alertmanager": ["alertmanager:9093"], "prometheus": ["localhost:9090"]}
    assert jobs["target"][0].endswith(f":{DemoConfig().port}")
    assert jobs["sre-agent"][0].endswith(f":{Settings(_env_file=None).port}")  # type: ignore[call-arg]
    assert config["rule_files"] == ["alert_rules.yml"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == [
        "alertmanager:9093"]
    assert config["global"]["scrape_interval"] == config["global"]["evaluation_interval"] == "5s"


def test_alertmanager_config_passes_amtool(tmp_path: Path) -> None:
    amtool = require_binary("amtool")
    (tmp_path / "webhook-token").write_text("a-real-token-1234")
    text = (MONITORING / "alertmanager.yml").read_text().replace(
        "/etc/alertmanager/webhook-token", str(tmp_path / "webhook-token"))
    (tmp_path / "alertmanager.yml").write_text(text)
    out = run_tool(amtool, "check-config", str(tmp_path / "alertmanager.yml"))
    assert "SUCCESS" in out and "1 receivers" in out


def test_alertmanager_config_contract() -> None:
    config = load("alertmanager.yml")
    route = config["route"]
    assert route["receiver"] == "sre-agent"
    assert route["group_by"] == ["alertname", "job"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "5s", "30s", "1h")
    (receiver,) = config["receivers"]
    (hook,) = receiver["webhook_configs"]
    assert hook["url"] == f"http://agent:{Settings(_env_file=None).port}/webhook/alertmanager"  # type: ignore[call-arg]
    assert hook["send_resolved"] is True
    auth = hook["http_config"]["authorization"]
    assert auth == {"type": "Bearer", "credentials_file": "/etc/alertmanager/webhook-token"}
    assert "credentials" not in auth  # the token is never in the file


# --- Alertmanager with this config, for real ----------------------------------------------------

class _Capture(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CaptureHandler)
        self.received: list[tuple[str, str, dict[str, Any]]] = []
        self.lock = threading.Lock()


class _CaptureHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server: Any = self.server
        with server.lock:
            server.received.append((self.path, self.headers.get("Authorization", ""), body))
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def capture() -> Iterator[_Capture]:
    server = _Capture()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def _wait_for_delivery(capture: _Capture, alertname: str,
                       timeout: float = 20) -> tuple[str, str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with capture.lock:
            for item in capture.received:
                if item[2]["groupLabels"].get("alertname") == alertname:
                    return item
        time.sleep(0.1)
    raise AssertionError(f"no notification for {alertname} within {timeout}s")


def test_alertmanager_sends_the_token_from_its_credentials_file(tmp_path: Path,
                                                                capture: _Capture) -> None:
    token_file = tmp_path / "webhook-token"
    token_file.write_text("first-token-abcdef\n")  # a trailing newline, as editors write it
    port = capture.server_address[1]
    text = (MONITORING / "alertmanager.yml").read_text()
    text = text.replace("/etc/alertmanager/webhook-token", str(token_file))
    text = text.replace("http://agent:8001/", f"http://127.0.0.1:{port}/")
    text = text.replace("group_wait: 5s", "group_wait: 1s")
    text = text.replace("group_interval: 30s", "group_interval: 5s")
    with running_alertmanager(tmp_path / "am", config=text) as am:
        post_alerts(am.url, [{"labels": {"alertname": "TargetDown", "job": "target",
                                         "instance": "target:8080", "severity": "critical"},
                              "annotations": {"summary": "down"}}])
        path, auth, body = _wait_for_delivery(capture, "TargetDown")
        assert path == "/webhook/alertmanager"
        assert auth == "Bearer first-token-abcdef"
        assert body["receiver"] == "sre-agent" and body["version"] == "4"
        assert body["groupLabels"] == {"alertname": "TargetDown", "job": "target"}

        token_file.write_text("rotated-token-123456")  # read per notification: no reload
        post_alerts(am.url, [{"labels": {"alertname": "HighLatency", "job": "target",
                                         "severity": "warning"}}])
        _, auth, _ = _wait_for_delivery(capture, "HighLatency")
        assert auth == "Bearer rotated-token-123456"


# --- Prometheus with these rules, scraping the real demo target ---------------------------------

def _alert_states(prom_url: str) -> dict[str, str]:
    alerts = http_get_json(f"{prom_url}/api/v1/alerts")["data"]["alerts"]
    return {a["labels"]["alertname"]: a["state"] for a in alerts}


def _wait_for_alert(prom_url: str, name: str, states: set[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while time.monotonic() < deadline:
        seen = _alert_states(prom_url)
        if seen.get(name) in states:
            return
        time.sleep(0.25)
    raise AssertionError(f"{name} not in {states} within {timeout}s; alerts: {seen}")


def _post(url: str) -> None:
    urllib.request.urlopen(urllib.request.Request(url, method="POST", data=b""), timeout=5)


def test_rules_fire_on_the_real_demo_target(tmp_path: Path) -> None:
    """The rule expressions match what the target really exports: errors and latency make
    HighErrorRate / HighLatency active, a hang fires TargetUnhealthy while `up` stays 1, and a
    stopped target makes TargetDown active."""
    demo = DemoApp(DemoConfig(port=0, hang_max_s=5, work_iterations=1000))
    demo.start()
    traffic = TrafficGenerator(demo, rps=20, timeout_s=2)
    probe = SelfProbe(demo, interval_s=0.5, timeout_s=0.5)
    stopped = False
    try:
        traffic.start()
        probe.start()
        rules = (MONITORING / "alert_rules.yml").read_text()
        target = f"127.0.0.1:{demo.port}"
        with running_prometheus(tmp_path, targets=[target], job="target", rules=rules) as prom:
            wait_for_value(prom.url, 'up{job="target"}', lambda v: v == 1)

            _post(f"{demo.url}/fault/errors?rate=0.5")
            _post(f"{demo.url}/fault/latency?ms=600")
            _wait_for_alert(prom.url, "HighErrorRate", {"pending", "firing"}, 20)
            _wait_for_alert(prom.url, "HighLatency", {"pending", "firing"}, 20)
            # A short window, so the ratio settles near the injected 0.5 within seconds.
            ratio = wait_for_value(
                prom.url, 'sum(rate(demo_requests_total{status="500"}[15s]))'
                          " / sum(rate(demo_requests_total[15s]))", lambda v: v > 0.3, 40)
            assert ratio < 0.7

            _post(f"{demo.url}/fault/clear")
            _post(f"{demo.url}/fault/hang")
            _wait_for_alert(prom.url, "TargetUnhealthy", {"firing"}, 25)
            assert wait_for_value(prom.url, 'up{job="target"}', lambda v: True) == 1
            assert "TargetDown" not in _alert_states(prom.url)

            _post(f"{demo.url}/fault/clear")
            traffic.stop()
            probe.stop()
            demo.stop()
            stopped = True
            _wait_for_alert(prom.url, "TargetDown", {"pending", "firing"}, 15)
    finally:
        if not stopped:
            traffic.stop()
            probe.stop()
            demo.stop()
