"""Run a server binary for a test: on a free loopback port, retried when the port is taken
between choosing and binding it, ready when ``GET <url>/-/ready`` answers 200, stopped by its PID.

    with start_on_free_port(lambda port, attempt: [binary, f"--listen=127.0.0.1:{port}"],
                            work_dir, name="prometheus") as server:
        ...  # server.url, server.port, server.process, server.log_tail()
"""

from __future__ import annotations

import contextlib
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.components import free_port


@dataclass
class ServerProcess:
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    config_path: Path | None = None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def wait_ready(server: ServerProcess, name: str, timeout: float,
               ready_path: str = "/-/ready") -> None:
    """Poll ``ready_path`` until it answers 200; RuntimeError when the process exits first or
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"{name} exited with {server.process.returncode}:\n"
                               f"{server.log_tail()}")
        try:
            with urllib.request.urlopen(f"{server.url}{ready_path}", timeout=1) as resp:
                if resp.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{name} not ready after {timeout}s:\n{server.log_tail()}")


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate (then kill) ``process`` by its PID, if it still runs."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def start_on_free_port(cmd_for_port: Callable[[int, int], list[str]], log_dir: Path, *,
                       name: str, config_path: Path | None = None, ready_path: str = "/-/ready",
                       ready_timeout: float = 30.0, attempts: int = 3) -> Iterator[ServerProcess]:
    """Start ``cmd_for_port(port, attempt)`` on a free port (output to
    ``log_dir/<name>-<attempt>.log``), wait until ``http://127.0.0.1:<port><ready_path>`` is
    ready, yield it and stop it afterwards. A start that fails is retried on another port, up to
    ``attempts`` times; then RuntimeError. ``config_path`` is only recorded on the result."""
    last_error: Exception | None = None
    for attempt in range(attempts):  # a free port can be taken between choosing and binding it
        port = free_port()
        log_path = log_dir / f"{name}-{attempt}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(cmd_for_port(port, attempt), stdout=log,
                                       stderr=subprocess.STDOUT)
        server = ServerProcess(url=f"http://127.0.0.1:{port}", port=port, process=process,
                               log_path=log_path, config_path=config_path)
        try:
            try:
                wait_ready(server, name, ready_timeout, ready_path)
            except RuntimeError as exc:
                last_error = exc
                continue
            yield server
            return
        finally:
            stop_process(process)
    raise RuntimeError(f"{name} did not start: {last_error}")
