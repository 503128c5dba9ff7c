"""Two checkouts alternating on one case of ``incident_throughput.py``: before and after a change.

    .venv/bin/python benchmarks/incident_throughput_ab.py --before /tmp/before --rounds 2 \\
        -- --backends postgresql --workers 8 --replicas 1

``--before`` is a checkout of the older code (``git worktree add /tmp/before COMMIT``); its
``src`` goes on the serve processes' PYTHONPATH, while this checkout's benchmark drives both.
Runs before, after, before, after, ... so both see the same machine. Writes
benchmarks/results/<--output>.json (default ``incident_throughput_ab_pg``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine, write_result

ROOT = Path(__file__).resolve().parent.parent


def commit_of(path: Path) -> str:
    return subprocess.run(["git", "-C", str(path), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()


def one(code: str, pythonpath: str | None, case: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = "_ab_case"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "incident_throughput.py"), *case,
                    "--output", out, "--label", code], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    path = ROOT / "benchmarks" / "results" / f"{out}.json"
    data = json.loads(path.read_text())
    path.unlink()
    [result] = data["cases"]
    return {"code": code, "incidents_per_s": result["incidents_per_s"],
            "agent_cpu_ms_per_incident": result["agent_cpu_ms_per_incident"],
            "load_1m": result["load_average_before"][0], "checks": result["checks"],
            "first_post_to_last_diagnosis_s": result["first_post_to_last_diagnosis_s"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--output", default="incident_throughput_ab_pg")
    parser.add_argument("case", nargs="*", help="incident_throughput.py arguments, one case")
    args = parser.parse_args()
    before = (f"before {commit_of(args.before)}", str(args.before / "src"))
    after = (f"after {commit_of(ROOT)}", None)
    runs = []
    for _ in range(args.rounds):
        for code, pythonpath in (before, after):
            runs.append(one(code, pythonpath, args.case))
            print(json.dumps(runs[-1]), flush=True)
    setup = (f"benchmarks/incident_throughput.py {' '.join(args.case)}, before and after "
             f"alternating ({args.rounds} rounds; before with PYTHONPATH=<that checkout>/src)")
    path = write_result(args.output, {"machine": machine(), "setup": setup, "runs": runs})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
