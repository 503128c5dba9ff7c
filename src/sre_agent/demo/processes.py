"""Process and HTTP plumbing for the demo stack: binaries, free ports, start/stop by PID."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

HOST = "127.0.0.1"


class StackError(RuntimeError):
    """A component is missing, did not start or did not become healthy."""


# --- small process and HTTP helpers ---------------------------------------------------------

def free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def find_binary(names: tuple[str, ...], explicit: str | None = None) -> str:
    """The first of ``names`` on PATH, else in /usr/bin; ``explicit`` wins when given."""
    if explicit:
        if shutil.which(explicit) or Path(explicit).is_file():
            return shutil.which(explicit) or explicit
        raise StackError(f"{explicit} not found")
    for name in names:
        found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file()
                                       else None)
        if found:
            return found
    raise StackError(f"{' or '.join(names)} not found on PATH or in /usr/bin")


def http_client() -> httpx.Client:
    return httpx.Client(timeout=5.0, trust_env=False)


def url_ok(url: str, timeout: float = 1.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def write_private(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only (0600)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def parse_time(value: str) -> float:
    """An ISO 8601 timestamp (the event log's ``at``, Prometheus' ``activeAt``, Docker's
    nanosecond RFC 3339) as a Unix time."""
    text = value.strip().replace("Z", "+00:00")
    m = re.match(r"^(.*T\d{2}:\d{2}:\d{2})(\.\d+)?(.*)$", text)
    if m is not None and m.group(2):  # Python parses at most 6 fraction digits
        text = m.group(1) + m.group(2)[:7] + m.group(3)
    return datetime.fromisoformat(text).timestamp()


@dataclass
class Process:
    """A child process started by the stack, with its log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return int(self.popen.pid)

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; by PID, this process only."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    self.popen.kill()
                self.popen.wait(timeout=5)

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.kill()
            self.popen.wait(timeout=5)


def spawn(name: str, args: list[str], log_path: Path, *, env: Mapping[str, str] | None = None,
           cwd: Path | None = None) -> Process:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        popen = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, cwd=cwd,
                                 env=dict(env) if env is not None else None,
                                 start_new_session=True)  # Ctrl-C reaches the launcher only
    return Process(name, popen, log_path)


def wait_for(what: str, predicate: Callable[[], bool], timeout: float,
          process: Process | None = None, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if process is not None and not process.alive():
            raise StackError(f"{process.name} exited with {process.popen.returncode} before "
                             f"{what}:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            tail = f":\n{process.log_tail()}" if process is not None else ""
            raise StackError(f"{what} not reached within {timeout:g}s{tail}")
        time.sleep(interval)
