"""The real-model tier: llama.cpp's ``llama-server`` with a real small model, on a free port.

``scripts/setup-local-llm.sh`` (run by ``.ci/run``) builds the server and fetches the model into
``~/.cache/sre-agent/llm`` (or ``$SRE_AGENT_LLM_CACHE``); ``LLAMA_SERVER`` / ``LLAMA_MODEL``
override the paths. ``real_llm`` (session-scoped) starts one server for the whole session and
stops it by PID. Missing parts skip locally and fail under ``CI=true``.

Also used by ``benchmarks/llm_analysis.py``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support.components import free_port, require

MODEL_FILE = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_ALIAS = "qwen2.5-coder-1.5b-instruct"


def cache_dir() -> Path:
    default = Path.home() / ".cache" / "sre-agent" / "llm"
    return Path(os.environ.get("SRE_AGENT_LLM_CACHE", default))


def find_parts() -> tuple[Path | None, Path | None]:
    """(llama-server binary, model file), from the environment or the cache; None if absent."""
    server = os.environ.get("LLAMA_SERVER")
    model = os.environ.get("LLAMA_MODEL")
    server_path = Path(server) if server else None
    if server_path is None:
        # scripts/setup-local-llm.sh links bin/llama-server to the flavour it chose for this
        # CPU (and smoke-tested); an older cache without the link: its newest build.
        chosen = cache_dir() / "bin" / "llama-server"
        found = list((cache_dir() / "bin").glob("llama-server-*"))
        server_path = chosen if chosen.exists() else (
            max(found, key=lambda p: p.stat().st_mtime) if found else None)
    model_path = Path(model) if model else cache_dir() / "models" / MODEL_FILE
    return (server_path if server_path and os.access(server_path, os.X_OK) else None,
            model_path if model_path.is_file() else None)


@dataclass
class LlamaServer:
    url: str  # the OpenAI base URL, .../v1
    model: str
    pid: int
    log: Path


@contextlib.contextmanager
def running_llama_server(server: Path, model: Path, *, threads: int = 2, ctx: int = 8192,
                         ready_timeout_s: float = 180.0) -> Iterator[LlamaServer]:
    """One ``llama-server`` on a free loopback port, stopped by PID on exit."""
    port = free_port()
    log = Path(tempfile.mkstemp(prefix="llama-server-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(server), "-m", str(model), "-a", MODEL_ALIAS, "--host", "127.0.0.1",
             "--port", str(port), "-t", str(threads), "-c", str(ctx), "-np", "1", "--jinja",
             "--no-webui"], stdout=out, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + ready_timeout_s
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {proc.returncode}: "
                                   f"{log.read_text(errors='replace')[-2000:]}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"llama-server not ready within {ready_timeout_s:.0f}s")
            time.sleep(0.5)
        yield LlamaServer(url=f"{base}/v1", model=MODEL_ALIAS, pid=proc.pid, log=log)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


@pytest.fixture(scope="session")
def real_llm() -> Iterator[LlamaServer]:
    server, model = find_parts()
    require(server is not None and model is not None,
            f"llama-server or the model not found in {cache_dir()} (run "
            "scripts/setup-local-llm.sh, or set LLAMA_SERVER and LLAMA_MODEL)")
    assert server is not None and model is not None
    with running_llama_server(server, model) as running:
        yield running
