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
