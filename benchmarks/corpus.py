"""The public-collection corpus (tests/corpus): share categorised, labelled accuracy, unsafe
proposals and restarts, per collection and per family, plus the rules engine's time per alert
over the whole corpus. Writes benchmarks/results/corpus.json (rendered in docs/benchmarks.md).

    .venv/bin/python benchmarks/corpus.py
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.corpus.harness import EVIDENCE, HELD_OUT, TARGETS, context_for, load_rules, run

from benchmarks.common import machine, percentile, write_result
from sre_agent.analysis.rules import RulesAnalyzer

NOTES = [
    "The labelled figures of the tuning collections are optimistic: the classifier and the "
    "runbooks were tuned on them. Blind samples labelled before tuning on them scored: "
    "awesome-prometheus-alerts and kube-prometheus 52/57 (91%, seed 11) and 41/46 (89%, "
    "seed 23) in round 1; monitoring-mixins 72/91 (79%, seeds 7 and 29) in round 1, when it "
    "was held out, and 48/56 (86%, seed 53) after the first round-2 changes.",
    "The held-out collection (giantswarm, round 2) is the estimate for collections never "
    "seen: its sample was labelled before the classifier ran on it, and it was measured once, "
    "not tuned on. Its misclassifications are listed in held_out_wrong for a later round.",
    "Container actions: every rule is sent with a running container that has no health check, "
    "so a restart is proposed only where the alert says a stateless subject is down.",
]


def engine_times(rules: list[dict[str, object]], repeats: int = 3) -> dict[str, float]:
    analyzer = RulesAnalyzer()
    prepared = [context_for(r, i) for i, r in enumerate(rules)]  # type: ignore[arg-type]
    times: list[float] = []
    cpu: list[float] = []
    load = os.getloadavg()[0]
    for _ in range(repeats):
        for ctx in prepared:
            t0, c0 = time.perf_counter(), time.thread_time()
            analyzer.analyse_sync(ctx, TARGETS, EVIDENCE)
            cpu.append((time.thread_time() - c0) * 1000)
            times.append((time.perf_counter() - t0) * 1000)
    return {"p50": round(percentile(times, 50), 3), "p99": round(percentile(times, 99), 3),
            "n": len(times), "cpu_p50": round(percentile(cpu, 50), 3),
            "cpu_p99": round(percentile(cpu, 99), 3), "load_average_1m": round(load, 2)}


def main() -> None:
    rules = load_rules()
    by_collection, by_family = run(rules)
    result = {
        "machine": machine(), "held_out": HELD_OUT,
        "collections": {k: v.as_dict() for k, v in by_collection.items()},
        "families": {k: {key: v.as_dict()[key] for key in
                         ("alerts", "categorised_share", "unsafe", "container_actions",
                          "labelled", "labelled_correct")}
                     for k, v in sorted(by_family.items())},
        "held_out_wrong": by_collection[HELD_OUT].wrong,
        "engine_ms_per_alert": engine_times(rules),
        "notes": NOTES,
        "targets": {"categorised_share_min": 0.9, "labelled_accuracy_min": 0.9, "unsafe": 0,
                    "p99_ms_max": 2.0},
    }
    path = write_result("corpus", result)
    print(json.dumps(result["collections"], indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
