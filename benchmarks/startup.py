"""Start-up: process start -> ``/ready`` answering 200, and idle memory, without an LLM.

Starts ``python -m sre_agent serve`` N times (default 5), each on a fresh SQLite file, from a
scratch working directory (no ``.env``) and with every ``SRE_AGENT_*`` variable removed from the
environment (so no LLM is configured), polls ``/ready`` every 10 ms and reports the median time
to the first 200. The idle RSS (VmRSS) is read one second after ready. Separately, a fresh
``python -c`` imports ``sre_agent.api.app`` and ``sre_agent.bootstrap`` and builds the app the way
``serve`` does; it reports the import time and that no ``langchain*`` (nor ``openai``) module
was loaded. Writes benchmarks/results/startup.json.

    .venv/bin/python benchmarks/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import PYTHON, free_port, machine, write_result
from benchmarks.procstats import load_average, machine_size, peak_rss_mb, rss_mb

TARGETS = {"ready_s_max": 3.0, "idle_rss_mb_max": 200.0}

IMPORT_PROBE = r"""
import json, sys, tempfile, time
t0 = time.perf_counter()
import sre_agent.api.app, sre_agent.bootstrap
imported = time.perf_counter() - t0
from sre_agent.config import Settings
with tempfile.TemporaryDirectory() as tmp:
    settings = Settings(_env_file=None, database_url=f"sqlite:///{tmp}/probe.db")
    app = sre_agent.api.app.create_app(settings)
    built = time.perf_counter() - t0
    app.state.services.store.engine.dispose()
print(json.dumps({
    "import_s": round(imported, 3), "import_and_create_app_s": round(built, 3),
    "llm_enabled": settings.llm.enabled,
    "langchain_modules": sorted(m for m in sys.modules if m.startswith("langchain")),
    "openai_modules": sorted(m for m in sys.modules if m == "openai" or m.startswith("openai.")),
}))
"""


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    env.update(extra)
    return env


def one_start(tmp: Path, index: int) -> dict[str, Any]:
    port = free_port()
    db = tmp / f"start-{index}.db"
    url = f"http://127.0.0.1:{port}/ready"
    env = clean_env(SRE_AGENT_DATABASE_URL=f"sqlite:///{db}", SRE_AGENT_LOG_LEVEL="WARNING")
    started = time.perf_counter()
    proc = subprocess.Popen([PYTHON, "-m", "sre_agent", "serve", "--port", str(port)], env=env,
                            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ready_s: float | None = None
        with httpx.Client(timeout=1) as client:
            while time.perf_counter() - started < 30:
                try:
                    if client.get(url).status_code == 200:
                        ready_s = time.perf_counter() - started
                        break
                except httpx.TransportError:
                    pass
                if proc.poll() is not None:
                    raise RuntimeError(f"agent exited with {proc.returncode}")
                time.sleep(0.01)
        if ready_s is None:
            raise RuntimeError("agent not ready within 30 s")
        time.sleep(1.0)
        return {"ready_s": round(ready_s, 3), "idle_rss_mb": rss_mb(proc.pid),
                "peak_rss_mb": peak_rss_mb(proc.pid)}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def import_probe(tmp: Path) -> dict[str, Any]:
    out = subprocess.run([PYTHON, "-c", IMPORT_PROBE], env=clean_env(), cwd=tmp,
                         capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    load_before = load_average()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        one_start(tmp, -1)  # warm the OS page cache once; not counted
        runs = [one_start(tmp, i) for i in range(args.runs)]
        probes = [import_probe(tmp) for _ in range(args.runs)]
    ready = statistics.median(r["ready_s"] for r in runs)
    idle = statistics.median(r["idle_rss_mb"] for r in runs)
    langchain = sorted({m for p in probes for m in p["langchain_modules"]})
    openai = sorted({m for p in probes for m in p["openai_modules"]})
    result: dict[str, Any] = {
        "machine": {**machine(), **machine_size(), "load_average_before": load_before},
        "runs": runs,
        "ready_s_median": ready,
        "idle_rss_mb_median": idle,
        "import_probe": {
            "import_s_median": statistics.median(p["import_s"] for p in probes),
            "import_and_create_app_s_median": statistics.median(
                p["import_and_create_app_s"] for p in probes),
            "llm_enabled": any(p["llm_enabled"] for p in probes),
            "langchain_modules_loaded": langchain,
            "openai_modules_loaded": openai,
        },
        "targets": TARGETS,
        "verdicts": [
            f"process start -> /ready 200 <= {TARGETS['ready_s_max']:g} s: "
            f"{'met' if ready <= TARGETS['ready_s_max'] else 'NOT MET'} "
            f"(median {ready} s of {args.runs})",
            f"idle RSS after ready <= {TARGETS['idle_rss_mb_max']:g} MB: "
            f"{'met' if idle <= TARGETS['idle_rss_mb_max'] else 'NOT MET'} (median {idle} MB)",
            f"langchain not imported without an LLM: {'met' if not langchain else 'NOT MET'} "
            f"({len(langchain)} langchain modules loaded)",
        ],
    }
    path = write_result("startup", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
