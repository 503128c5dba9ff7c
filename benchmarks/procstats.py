"""Process figures from /proc (Linux): resident memory now and its peak, machine size.

    rss_mb(pid)        VmRSS  (resident set size now)
    peak_rss_mb(pid)   VmHWM  (high-water mark of the resident set since the process started)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])  # "VmRSS:   123456 kB"
    raise KeyError(f"{field} not in /proc/{pid}/status")


def rss_mb(pid: int) -> float:
    return round(_status_kb(pid, "VmRSS") / 1024, 1)


def peak_rss_mb(pid: int) -> float:
    return round(_status_kb(pid, "VmHWM") / 1024, 1)


def memory_total_mb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) // 1024
    return 0


def machine_size() -> dict[str, Any]:
    """nproc (CPUs this process may use) and total memory."""
    return {"nproc": len(os.sched_getaffinity(0)), "memory_mb": memory_total_mb()}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return round((int(fields[11]) + int(fields[12])) / ticks, 2)  # utime, stime


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time per thread name (threads of the same name summed)."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            name = (task / "comm").read_text().strip()
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[name] = round(out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / ticks, 2)
    return out


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]
