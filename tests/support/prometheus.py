"""Run a real Prometheus binary for a test: free port, temp config and storage, fast intervals.

    with running_prometheus(tmp_path, targets=["127.0.0.1:28080"], job="web") as prom:
        wait_for_value(prom.url, 'up{job="web"}', lambda v: v == 1)

The process is stopped by its PID in ``finally`` (``tests.support.processes``). Under CI=true a
missing binary fails the test.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from tests.support.components import require_binary
from tests.support.processes import ServerProcess, start_on_free_port

PrometheusProcess = ServerProcess


def prometheus_config(targets: list[str], job: str, *, rule_files: list[str] | None = None,
                      alertmanager: str | None = None, metrics_path: str = "/metrics") -> str:
    config: dict[str, Any] = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s", "scrape_timeout": "1s"},
        "scrape_configs": [{"job_name": job, "metrics_path": metrics_path,
                            "static_configs": [{"targets": targets}]}],
    }
    if rule_files:
        config["rule_files"] = rule_files
    if alertmanager:
        config["alerting"] = {"alertmanagers": [{"static_configs": [
            {"targets": [alertmanager]}]}]}
    return json.dumps(config, indent=2)  # JSON is valid YAML


def http_get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def instant_query(base_url: str, promql: str) -> list[dict[str, Any]]:
    url = f"{base_url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    result: list[dict[str, Any]] = http_get_json(url)["data"]["result"]
    return result


def wait_for_value(base_url: str, promql: str, predicate: Callable[[float], bool],
                   timeout: float = 30.0) -> float:
    """Poll an instant query until some series' value satisfies ``predicate``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = instant_query(base_url, promql)
            for series in last:
                value = float(series["value"][1])
                if predicate(value):
                    return value
        except (OSError, ValueError, KeyError) as exc:
            last = exc
        time.sleep(0.25)
    raise AssertionError(f"{promql!r} never satisfied the predicate within {timeout}s: {last!r}")


@contextlib.contextmanager
def running_prometheus(work_dir: Path, targets: list[str], job: str = "target", *,
                       rules: str | None = None, alertmanager: str | None = None,
                       metrics_path: str = "/metrics",
                       ready_timeout: float = 30.0) -> Iterator[PrometheusProcess]:
    """Start ``/usr/bin/prometheus`` scraping ``targets`` every second; stop it afterwards.

    ``rules`` is the text of a rule file (evaluated every second); ``alertmanager`` is a
    ``host:port`` to send alerts to.
    """
    binary = require_binary("prometheus")
    work_dir.mkdir(parents=True, exist_ok=True)
    rule_files: list[str] = []
    if rules is not None:
        rule_path = work_dir / "rules.yml"
        rule_path.write_text(rules)
        rule_files.append(str(rule_path))
    config_path = work_dir / "prometheus.yml"
    config_path.write_text(prometheus_config(targets, job, rule_files=rule_files,
                                             alertmanager=alertmanager,
                                             metrics_path=metrics_path))

    def command(port: int, attempt: int) -> list[str]:
        return [binary, f"--config.file={config_path}",
                f"--storage.tsdb.path={work_dir / f'data-{attempt}'}",
                f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn",
                "--storage.tsdb.retention.time=1h"]

    with start_on_free_port(command, work_dir, name="prometheus", config_path=config_path,
                            ready_timeout=ready_timeout) as proc:
        yield proc
