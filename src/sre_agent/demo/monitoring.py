"""Prometheus and Alertmanager for the demo stack: started from their binaries with configs
derived from ``monitoring/*.yml``, and read back through their HTTP APIs."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

from sre_agent.demo.configs import fast_alertmanager_config, fast_prometheus_config, fast_rules
from sre_agent.demo.processes import (
    HOST,
    Process,
    StackError,
    free_port,
    http_client,
    spawn,
    url_ok,
    wait_for,
    write_private,
)
from sre_agent.demo.spec import StackOptions, Target


class Monitoring:
    """The monitoring half of ``DemoStack`` (a mixin: the stack owns the attributes)."""

    options: StackOptions
    repo: Path
    work_dir: Path
    targets: list[Target]
    webhook_token: str
    rules: dict[str, Any]
    prometheus: Process | None
    alertmanager: Process | None
    prometheus_binary: str
    alertmanager_binary: str
    agent_port: int
    prometheus_port: int
    alertmanager_port: int

    @property
    def agent_url(self) -> str:
        return f"http://{HOST}:{self.agent_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://{HOST}:{self.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{HOST}:{self.alertmanager_port}"

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
