"""The real ``sre-agent serve`` process: refuses unsafe binds, serves on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.components import free_port, wait_ready
from tests.support.payloads import notification

pytestmark = pytest.mark.integration


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    env.update({"SRE_AGENT_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", **extra})
    return env


def test_public_bind_without_tokens_exits_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sre_agent", "serve", "--host", "0.0.0.0"],
                          env=_env(tmp_path), capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "non-loopback" in lines[0] and "Traceback" not in proc.stderr


def test_placeholder_token_refused(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sre_agent", "serve"],
                          env=_env(tmp_path, SRE_AGENT_OPERATOR_TOKEN="changeme"),
                          capture_output=True, text=True, timeout=60, cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "placeholder" in proc.stderr
    assert "changeme" not in proc.stderr


def test_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sre_agent", "serve", "--port", str(port)],
                            env=_env(tmp_path, SRE_AGENT_WEBHOOK_TOKEN="wh-secret-token-1"),
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(base, 20)
        r = httpx.post(f"{base}/webhook/alertmanager", json=notification(),
                       headers={"authorization": "Bearer wh-secret-token-1"})
        assert r.status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    # uvicorn re-raises the signal after a graceful shutdown, so -SIGTERM is a clean exit.
    assert proc.returncode in (0, -signal.SIGTERM)
    logs = err.decode()
    assert "agent_stopped" in logs
    assert "webhook_accepted" in logs and "wh-secret-token-1" not in logs


def test_port_in_use_fails_before_started_with_one_line(tmp_path: Path) -> None:
    import socket

    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        proc = subprocess.run([sys.executable, "-m", "sre_agent", "serve", "--port", str(port)],
                              env=_env(tmp_path), capture_output=True, text=True, timeout=60,
                              cwd=tmp_path, check=False)
    finally:
        holder.close()
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"127.0.0.1:{port}" in lines[0] and "already in use" in lines[0]
    assert "agent_started" not in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("fmt", ["console", "json"])
def test_says_where_the_dashboard_is(tmp_path: Path, fmt: str) -> None:
    import json

    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "sre_agent", "serve", "--port", str(port)],
                            env=_env(tmp_path, SRE_AGENT_LOG_FORMAT=fmt), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_ready(f"http://127.0.0.1:{port}", 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=20)
    lines = err.decode().strip().splitlines()
    url = f"http://127.0.0.1:{port}/status"
    if fmt == "console":
        assert any(f"open {url}" in line for line in lines), lines
    else:
        records = [json.loads(line) for line in lines]  # every line is JSON: nothing plain
        started = next(r for r in records if r["event"] == "agent_started")
        assert started["dashboard"] == url
