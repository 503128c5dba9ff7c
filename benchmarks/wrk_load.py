"""A load generator outside Python: ``wrk`` (Debian's package), for throughput at concurrency 32.

The httpx generator of ``common.drive`` runs in one Python process: on this 2-core machine it
tops out near 350-400 requests/s, about what the bare FastAPI endpoint also answers, so ratios
against the bare endpoint measured with it say more about the generator than the servers.
``wrk`` is C with an event loop per thread. Every request it sends is a distinct notification
(its own fingerprint and groupKey, as ``webhook_throughput.body`` makes them), numbered by
thread and request in its Lua script, so nothing is a duplicate.

Runs for a duration (wrk has no request count): requests/s and non-2xx counts come from
wrk's own summary, printed as JSON by the script's ``done`` hook.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from benchmarks.webhook_throughput import body

_SCRIPT = r"""
local template = [==[@BODY@]==]
local token = "@TOKEN@"
local base = @BASE@
local threads = {}
local counter = 0
local id = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  counter = 0
end

function request()
  counter = counter + 1
  local i = base + id * 10000000 + counter
  local fp = string.format("%08d", i)
  local b = template:gsub("@FP@", fp):gsub("@GROUP@", tostring(i))
  return wrk.format("POST", nil, {["Content-Type"] = "application/json",
                                  ["Authorization"] = "Bearer " .. token}, b)
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "non_2xx": %d, "socket_errors": %d, ' ..
    '"p50_us": %d, "p99_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def template() -> str:
    """The notification of ``webhook_throughput.body`` with placeholders for its numbers."""
    text = body(0).decode()
    text = text.replace("bench00000000", "bench@FP@").replace("bench-group-0",
                                                            "bench-group-@GROUP@")
    assert "@FP@" in text and "@GROUP@" in text, "body() changed shape"
    return text


def drive_wrk(url: str, *, base: int, seconds: float, concurrency: int, threads: int,
              token: str) -> dict[str, Any]:
    """POST distinct notifications to ``url`` for ``seconds`` from ``concurrency`` connections
    on ``threads`` wrk threads; numbers start above ``base``."""
    script = (_SCRIPT.replace("@BODY@", template()).replace("@TOKEN@", token)
              .replace("@BASE@", str(base)))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "post.lua"
        path.write_text(script)
        split = urlsplit(url)
        proc = subprocess.run(
            ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{seconds:g}s",
             "--timeout", "30s", "-s", str(path), f"{split.scheme}://{split.netloc}{split.path}"],
            capture_output=True, text=True, timeout=seconds + 60, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr.strip()[:500]}")
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith('{"requests"'))
    raw = json.loads(line)
    elapsed = raw["duration_us"] / 1e6
    return {
        "generator": f"wrk -t{threads} -c{concurrency}",
        "requests": raw["requests"], "concurrency": concurrency, "seconds": round(elapsed, 3),
        "per_second": round(raw["requests"] / elapsed, 1),
        "p50_ms": round(raw["p50_us"] / 1000, 2), "p99_ms": round(raw["p99_us"] / 1000, 2),
        "mean_ms": round(raw["mean_us"] / 1000, 2),
        "non_2xx": raw["non_2xx"], "socket_errors": raw["socket_errors"],
    }
