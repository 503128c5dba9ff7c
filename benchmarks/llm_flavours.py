"""llama-server build flavours side by side: the same scenarios on each, alternating.

``scripts/setup-local-llm.sh`` builds one of two flavours for the CPU it runs on (``portable1``:
AVX2/FMA/F16C; ``avx512-1``: plus AVX-512 VNNI/VBMI/BF16). This runs ``llm_analysis.py`` on
the first ``--limit`` scenarios (investigation off) once per flavour per round, flavours
alternating, so both see the same machine, and reports each run's LLM analysis p50 / p95.

    .venv/bin/python benchmarks/llm_flavours.py --rounds 3 --limit 8

Writes benchmarks/results/llm_flavours.json. Flavours missing from the cache are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.llama import cache_dir

from benchmarks.common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent
FLAVOURS = ("portable1", "avx512-1")


def run_once(server: Path, limit: int) -> dict[str, Any]:
    out = f"_flavour_{server.name}"
    env = {**os.environ, "LLAMA_SERVER": str(server)}
    load = [round(x, 2) for x in os.getloadavg()]
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "llm_analysis.py"),
                    "--investigation", "off", "--no-agent-view", "--limit", str(limit),
                    "--out", out],
                   env=env, check=True, stdout=subprocess.DEVNULL)
    path = ROOT / "benchmarks" / "results" / f"{out}.json"
    data = json.loads(path.read_text())
    path.unlink()
    llm = data["reports"]["llm"]
    return {"load_before": load, "p50_ms": llm["latency_ms_p50"], "p95_ms": llm["latency_ms_p95"],
            "tokens_mean": llm["tokens_per_incident_mean"],
            "actions": [row["llm"] for row in data["rows"]]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--limit", type=int, default=8)
    args = parser.parse_args()
    servers = {f: cache_dir() / "bin" / f"llama-server-11434.0.0-{f}" for f in FLAVOURS}
    servers = {f: p for f, p in servers.items() if p.exists()}
    runs: list[dict[str, Any]] = []
    for rnd in range(1, args.rounds + 1):
        for flavour, server in servers.items():
            result = {"round": rnd, "flavour": flavour, **run_once(server, args.limit)}
            print(f"round {rnd} {flavour}: p50 {result['p50_ms'] / 1000:.2f} s, "
                  f"p95 {result['p95_ms'] / 1000:.2f} s, load {result['load_before']}")
            runs.append(result)
    medians = {f: statistics.median(r["p50_ms"] for r in runs if r["flavour"] == f)
               for f in servers}
    summary: dict[str, Any] = {"median_p50_ms": medians}
    if len(medians) == 2:
        summary["avx512_over_portable_p50"] = round(medians["avx512-1"] / medians["portable1"], 3)
    path = write_result("llm_flavours", {"machine": machine(), "limit": args.limit,
                                         "rounds": args.rounds, "runs": runs, **summary})
    print(json.dumps(summary))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
