"""Shared benchmark plumbing: start servers as subprocesses, generate load, summarise."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def machine() -> dict[str, Any]:
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "python": platform.python_version(),
            "platform": platform.platform(), "date": time.strftime("%Y-%m-%d")}


def code_label() -> str:
    """Which code the agents ran: this checkout's commit, or the checkout that PYTHONPATH puts
    first (the serve processes inherit it: how an older commit is measured beside this one)."""
    src = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0]
    where = Path(src).parent if src else ROOT
    try:
        sha = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return str(where)
    return f"{'before' if src else 'after'} {sha.strip()}"


def cpu_model() -> str:
    """The CPU, as /proc/cpuinfo names it, with its clock and whether it has AVX-512: the
    machines these benchmarks run on differ (the same code measured 2-2.5x apart)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "?"
    def field(name: str) -> str:
        return next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                     if ln.startswith(name)), "?")
    flags = field("flags").split()
    mhz = field("cpu MHz")
    return (f"{field('model name')}, {mhz.split('.')[0]} MHz"
            f"{', AVX-512' if 'avx512f' in flags else ', no AVX-512'}")


def start_server(args: list[str], env: dict[str, str], ready_url: str,
                 timeout: float = 30) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready_url, timeout=1).status_code < 500:
                return proc
        except httpx.TransportError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"server did not start: {args}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


async def drive(url: str | Callable[[int], str], bodies: Callable[[int], bytes], total: int,
                concurrency: int, headers: dict[str, str]) -> dict[str, Any]:
    """POST ``bodies(i)`` for i < total from ``concurrency`` closed-loop senders, to ``url``
    (or ``url(i)``: several servers)."""
    url_of = url if callable(url) else (lambda _i: url)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def worker() -> None:
            for i in counter:
                t0 = time.perf_counter()
                r = await client.post(url_of(i), content=bodies(i), headers=headers)
                latencies.append(time.perf_counter() - t0)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return {
        "requests": total, "concurrency": concurrency, "seconds": round(elapsed, 3),
        "per_second": round(total / elapsed, 1),
        "p50_ms": round(percentile(latencies, 50) * 1000, 2),
        "p99_ms": round(percentile(latencies, 99) * 1000, 2),
        "mean_ms": round(statistics.fmean(latencies) * 1000, 2),
        "statuses": statuses,
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


PYTHON = sys.executable
