"""Analysis costs: the rules engine per incident over the scenario suite, and evidence
gathering with every collector reachable (real Prometheus, Docker, HTTP probe) and with every
collector unreachable (bounded by the configured timeouts). Writes
benchmarks/results/analysis.json.

    .venv/bin/python benchmarks/analysis.py
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.docker_helpers import ContainerJanitor, docker_client
from tests.support.payloads import alert

from benchmarks.common import free_port, machine, percentile, write_result
from sre_agent.analysis.rules import RulesAnalyzer
from sre_agent.domain.evidence import AlertContext
from sre_agent.evaluation import load_scenarios
from sre_agent.evidence.docker import DockerEvidence
from sre_agent.evidence.http_probe import HttpProbe
from sre_agent.evidence.prometheus import PrometheusEvidence
from sre_agent.evidence.targets import DockerTargetResolver
from sre_agent.pipeline.analyse import gather_evidence

ROOT = Path(__file__).resolve().parent.parent


def summary(values_ms: list[float]) -> dict[str, float]:
    return {"p50": round(percentile(values_ms, 50), 3), "p99": round(percentile(values_ms, 99), 3),
            "mean": round(statistics.fmean(values_ms), 3), "n": len(values_ms)}


def bench_rules(repeats: int = 50) -> dict[str, object]:
    rules = RulesAnalyzer()
    scenarios = load_scenarios(ROOT / "tests" / "scenarios")
    prepared = [(s.context(), s.targets, s.evidence) for s in scenarios]
    times: list[float] = []
    cpu: list[float] = []
    load = os.getloadavg()[0]
    for _ in range(repeats):
        for ctx, targets, evidence in prepared:
            t0, c0 = time.perf_counter(), time.thread_time()
            rules.analyse_sync(ctx, targets, evidence)
            cpu.append((time.thread_time() - c0) * 1000)
            times.append((time.perf_counter() - t0) * 1000)
    # Wall-clock is the target; the thread's CPU time is the engine's own cost, without the
    # time the shared machine's scheduler gave to other processes (load average recorded).
    return {"scenarios": len(prepared), "repeats": repeats, "ms": summary(times),
            "cpu_ms": summary(cpu), "load_average_1m": round(load, 2),
            "target_p99_ms_max": 2.0}


def context_for(container: str, port: int) -> AlertContext:
    a = alert(labels={"container": container, "job": "target",
                      "instance": f"127.0.0.1:{port}"},
              expr='up{job="target"} == 1')  # true while healthy, so the query returns data
    return AlertContext(incident_id="bench", group_key="g", alerts=[{
        "labels": a["labels"], "annotations": a["annotations"], "status": "firing",
        "generator_url": a["generatorURL"], "starts_at": a["startsAt"],
        "fingerprint": a["fingerprint"]}], extra_queries={"up_total": "sum(up)"})


async def gather_times(ctx: AlertContext, resolver: DockerTargetResolver,
                       sources: list[object], runs: int) -> tuple[list[float], dict[str, int]]:
    times: list[float] = []
    statuses: dict[str, int] = {}
    for _ in range(runs):
        t0 = time.perf_counter()
        _targets, evidence = await gather_evidence(ctx, resolver, sources)  # type: ignore[arg-type]
        times.append((time.perf_counter() - t0) * 1000)
        for ev in evidence:
            key = f"{ev.source}:{ev.status}"
            statuses[key] = statuses.get(key, 0) + 1
    return times, statuses


def bench_evidence(runs: int = 30, timeout_s: float = 2.0) -> dict[str, object]:
    from tests.support.prometheus import running_prometheus, wait_for_value

    client = docker_client()
    result: dict[str, object] = {"evidence_timeout_s": timeout_s, "runs": runs}
    with tempfile.TemporaryDirectory() as tmp, ContainerJanitor(client) as janitor:
        port = free_port()
        box = janitor.run_busybox(
            ["httpd", "-f", "-p", "8080", "-h", "/www"], prefix="bench-ev",
            labels={"sre-agent.managed": "true",
                    "sre-agent.health-url": f"http://127.0.0.1:{port}/health"},
            ports={"8080/tcp": ("127.0.0.1", port)})
        with running_prometheus(Path(tmp) / "prom", [f"127.0.0.1:{port}"]) as prom:
            wait_for_value(prom.url, "up", lambda v: v == 1.0)
            docker_ev = DockerEvidence(timeout_s, 50)
            sources = [PrometheusEvidence(prom.url, timeout_s), docker_ev, HttpProbe(timeout_s)]
            resolver = DockerTargetResolver(docker_ev)
            ctx = context_for(box.name, port)
            times, statuses = asyncio.run(gather_times(ctx, resolver, sources, runs))
            result["reachable"] = {"ms": summary(times), "evidence_statuses": statuses,
                                   "target_ms_max": 500}
        dead = free_port()
        import docker

        dead_docker = DockerEvidence(timeout_s, 50, client_factory=lambda: docker.DockerClient(
            base_url="unix:///nonexistent/docker.sock", timeout=2))
        sources = [PrometheusEvidence(f"http://127.0.0.1:{dead}", timeout_s), dead_docker,
                   HttpProbe(timeout_s, default_urls={box.name: f"http://127.0.0.1:{dead}/h"})]
        times, statuses = asyncio.run(gather_times(context_for(box.name, dead),
                                                   DockerTargetResolver(dead_docker),
                                                   sources, max(5, runs // 3)))
        result["unreachable"] = {"ms": summary(times), "evidence_statuses": statuses,
                                 "bound_ms": timeout_s * 1000}
    return result


def main() -> None:
    result = {"machine": machine(), "rules": bench_rules(), "evidence": bench_evidence()}
    path = write_result("analysis", result)
    print(json.dumps(result, indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
