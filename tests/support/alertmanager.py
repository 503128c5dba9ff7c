"""Run a real Alertmanager (0.25, ``/usr/bin/prometheus-alertmanager``) for a test.

    with running_alertmanager(tmp_path) as am:                       # a "null" receiver
        silences = list_silences(am.url)
    with running_alertmanager(tmp_path, webhook_url="http://127.0.0.1:8001/webhook/alertmanager",
                              bearer_token="...") as am:
        post_alerts(am.url, [{"labels": {"alertname": "X"}}])

Free port, temporary config and storage, gossip off (``--cluster.listen-address=``), fast
grouping. The process is stopped by its PID in ``finally`` (``tests.support.processes``). Under
CI=true a missing binary fails the test instead of skipping it.
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tests.support.components import require_binary
from tests.support.processes import ServerProcess, start_on_free_port

BINARY = "prometheus-alertmanager"

AlertmanagerProcess = ServerProcess


def alertmanager_config(webhook_url: str | None = None, *, bearer_token: str | None = None,
                        basic_auth: tuple[str, str] | None = None, send_resolved: bool = True,
                        group_by: list[str] | None = None, group_wait: str = "1s",
                        group_interval: str = "5s", repeat_interval: str = "1h") -> str:
    """A config with one route to one receiver: a webhook when ``webhook_url`` is given, else a
    receiver that sends nothing."""
    receiver: dict[str, Any] = {"name": "agent" if webhook_url else "null"}
    if webhook_url:
        hook: dict[str, Any] = {"url": webhook_url, "send_resolved": send_resolved}
        if bearer_token is not None:
            hook["http_config"] = {"authorization": {"type": "Bearer",
                                                     "credentials": bearer_token}}
        elif basic_auth is not None:
            hook["http_config"] = {"basic_auth": {"username": basic_auth[0],
                                                  "password": basic_auth[1]}}
        receiver["webhook_configs"] = [hook]
    config = {
        "route": {"receiver": receiver["name"], "group_by": group_by or ["alertname"],
                  "group_wait": group_wait, "group_interval": group_interval,
                  "repeat_interval": repeat_interval},
        "receivers": [receiver],
    }
    return json.dumps(config, indent=2)  # JSON is valid YAML


def http_json(method: str, url: str, body: Any = None, timeout: float = 5.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


def list_silences(base_url: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = http_json("GET", f"{base_url}/api/v2/silences")
    return result


def list_alerts(base_url: str, *, silenced: bool = True) -> list[dict[str, Any]]:
    flag = "true" if silenced else "false"
    result: list[dict[str, Any]] = http_json(
        "GET", f"{base_url}/api/v2/alerts?silenced={flag}&inhibited=true&active=true")
    return result


def post_alerts(base_url: str, alerts: list[dict[str, Any]]) -> None:
    """Push alerts as Prometheus would (``labels`` required; annotations etc. optional)."""
    http_json("POST", f"{base_url}/api/v2/alerts", alerts)


@contextlib.contextmanager
def running_alertmanager(work_dir: Path, webhook_url: str | None = None, *,
                         config: str | None = None, ready_timeout: float = 30.0,
                         **config_options: Any) -> Iterator[AlertmanagerProcess]:
    """Start Alertmanager on a free loopback port; stop it (by PID) afterwards.

    ``config`` replaces the generated configuration; ``config_options`` go to
    ``alertmanager_config``.
    """
    binary = require_binary(BINARY)
    work_dir.mkdir(parents=True, exist_ok=True)
    config_path = work_dir / "alertmanager.yml"
    config_path.write_text(config if config is not None
                           else alertmanager_config(webhook_url, **config_options))

    def command(port: int, attempt: int) -> list[str]:
        return [binary, f"--config.file={config_path}",
                f"--storage.path={work_dir / f'am-data-{attempt}'}",
                f"--web.listen-address=127.0.0.1:{port}",
                f"--web.external-url=http://127.0.0.1:{port}",
                "--cluster.listen-address=", "--log.level=warn"]

    with start_on_free_port(command, work_dir, name="alertmanager", config_path=config_path,
                            ready_timeout=ready_timeout) as proc:
        yield proc
