"""Time to recover from a crash, end to end, on the real stack (``sre-agent demo``'s code).

Prometheus 2.42 and Alertmanager 0.25 (the Debian binaries), the demo target container, the
agent as a subprocess in autonomous mode, the fast demo timings (scrape and evaluation 1 s,
TargetDown ``for`` 2 s, group_wait 1 s, group_interval 5 s). Each run: ``POST /fault/crash``,
then the agent's own event log and the Prometheus alert API give the phases:

    detection     fault injected        -> AlertReceived      (Prometheus + Alertmanager)
    agent         AlertReceived         -> ActionStarted      (correlate, evidence, rules, gate)
    docker        ActionStarted         -> ActionSucceeded    (docker start of the container)
    confirmation  ActionSucceeded       -> IncidentResolved   (the `resolved` webhook)

    time to recover (TTR) = detection + agent + docker = fault -> container running again

The floor is what the configured intervals cost at worst alignment plus the restart itself:
scrape_interval + TargetDown `for` + evaluation_interval + group_wait + docker start (median).
Targets: the agent's share of TTR <= 2 %, TTR <= 1.3 x the floor.

Runs are independent first notifications: after each recovery the script waits until
Alertmanager has dropped the emptied TargetDown aggregation group (its maintenance runs every
30 s); otherwise the next crash would join the old group and wait for group_interval instead of
group_wait. The first run (a cold agent: first Docker client, first HTTP connections) is a
warm-up, recorded but left out of the medians.

    .venv/bin/python benchmarks/time_to_recover.py [--runs 7]
    .venv/bin/python benchmarks/time_to_recover.py --llm-url http://127.0.0.1:PORT/v1 \
        --llm-model NAME          # the LLM on (combined engine): time_to_recover_llm.json
    .venv/bin/python benchmarks/time_to_recover.py --llm-url local   # starts the local
                                  # llama-server of scripts/setup-local-llm.sh for the run

Writes benchmarks/results/time_to_recover.json (rules only) or time_to_recover_llm.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.e2e.timeline import (
    AlertWatcher,
    Timeline,
    poll,
    wait_event,
    wait_incident,
)

from benchmarks.common import machine, write_result
from sre_agent.demo.configs import rule_for_seconds
from sre_agent.demo.processes import parse_time
from sre_agent.demo.stack import DemoStack, StackOptions

AM_MAINTENANCE_S = 30.0  # Alertmanager removes empty aggregation groups on this tick
WAIT_S = 90.0


def steady(stack: DemoStack) -> bool:
    """The target is up in Prometheus, healthy in Docker, and no TargetDown is active."""
    up = {s["metric"].get("instance"): s["value"][1]
          for s in stack.query(f'up{{job="{stack.target.job}"}}')}
    if up.get(stack.target.instance) != "1":
        return False
    if any(a["labels"].get("alertname") == "TargetDown" for a in stack.prometheus_alerts()):
        return False
    return (stack.target.state().get("Health") or {}).get("Status") == "healthy"


def one_run(stack: DemoStack, index: int, explained: bool = False) -> dict[str, Any]:
    poll(lambda: steady(stack), WAIT_S, "steady state before the crash")
    timeline = Timeline(f"ttr-run-{index}")
    with AlertWatcher(stack, timeline, interval=0.1) as watcher:
        fault = timeline.mark("fault injected", stack.inject_fault("crash"))
        incident = wait_incident(stack, "TargetDown", after=fault, timeout=WAIT_S)
        wait_event(stack, incident, "VerificationPassed", WAIT_S)
        wait_event(stack, incident, "IncidentResolved", WAIT_S)
        if explained:  # the LLM on: its explanation arrives after the fix (combine.py rule 5)
            try:
                wait_event(stack, incident, "DiagnosisExplained", 2 * WAIT_S)
            except AssertionError:  # a slow model: recorded as missing, not a failed run
                print(f"no DiagnosisExplained within {2 * WAIT_S:g}s", flush=True)
    events = stack.events(incident=incident)
    timeline.add_agent_events(events)
    timeline.add_container(stack.target, after=fault)
    first: dict[str, float] = {}
    evidence_ms: dict[str, float] = {}
    for event in events:
        first.setdefault(str(event["type"]), parse_time(str(event["at"])))
        if event["type"] == "EvidenceCollected":
            for ev in event["data"]["evidence"]:
                key = f"{ev['source']}:{ev['name']}" if ev["source"] == "prometheus" \
                    else str(ev["source"])
                evidence_ms[key] = float(ev.get("duration_ms") or 0.0)
    received, started = first["AlertReceived"], first["ActionStarted"]
    explained_at = first.get("DiagnosisExplained")
    succeeded, resolved = first["ActionSucceeded"], first["IncidentResolved"]
    active_at = watcher.active_at.get("TargetDown")
    firing_seen = watcher.firing_at.get("TargetDown")
    run = {
        "run": index, "incident": incident,
        "detection_s": received - fault, "agent_s": started - received,
        "docker_s": succeeded - started, "confirmation_s": resolved - succeeded,
        "ttr_s": succeeded - fault, "fault_to_resolved_s": resolved - fault,
        **({"explanation_after_action_s": explained_at - succeeded
            if explained_at is not None else None} if explained else {}),
        "detail": {
            "fault_to_pending_s": None if active_at is None else active_at - fault,
            "pending_to_firing_seen_s": None if active_at is None or firing_seen is None
            else firing_seen - active_at,
            "firing_seen_to_webhook_s": None if firing_seen is None else received - firing_seen,
            "agent_evidence_s": first["EvidenceCollected"] - received,
            "agent_gate_and_start_s": started - first["DiagnosisProduced"],
            "evidence_ms": evidence_ms,
            "verification_s": first["VerificationPassed"] - succeeded,
            "container_healthy_s": None if timeline.at("container healthy") is None
            else float(timeline.at("container healthy") or 0) - fault,
        },
        "timeline": timeline.as_dict()["marks"],
    }
    print(timeline.render(), flush=True)
    # Let Alertmanager forget the emptied group, so the next run is a first notification again.
    deadline = resolved + AM_MAINTENANCE_S + 2.0
    poll(lambda: time.time() > deadline, AM_MAINTENANCE_S + 10, "Alertmanager maintenance",
         interval=0.5)
    return run


def median(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(float(r[key]) for r in runs)


def rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [rounded(v) for v in value]
    return value


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=7, help="measured runs (at least 5)")
    parser.add_argument("--warmup", type=int, default=1, help="runs left out of the medians")
    parser.add_argument("--llm-url", help="an OpenAI-compatible endpoint: the LLM on, combined "
                                          "with the rules")
    parser.add_argument("--llm-model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--llm-threads", type=int, default=2,
                        help="threads of the local llama-server (1 on a loaded machine)")
    args = parser.parse_args()
    if args.runs < 5:
        parser.error("--runs must be at least 5")
    if args.llm_url == "local":
        from tests.support.llama import find_parts, running_llama_server

        server, model = find_parts()
        if server is None or model is None:
            sys.exit("llama-server or the model missing: run scripts/setup-local-llm.sh")
        with running_llama_server(server, model, threads=args.llm_threads) as running:
            args.llm_url, args.llm_model = running.url, running.model
            measure(args)
        return
    measure(args)


def measure(args: argparse.Namespace) -> None:
    llm_env = ({"SRE_AGENT_LLM__BASE_URL": args.llm_url, "SRE_AGENT_LLM__MODEL": args.llm_model,
                "SRE_AGENT_LLM__TIMEOUT_S": "120", "SRE_AGENT_LLM__MAX_TOOL_CALLS": "2"}
               if args.llm_url else {})
    engine = "combined (LLM + rules)" if args.llm_url else "rules"
    # A job name of its own, so no other container labelled sre-agent.job=target on this
    # Docker daemon can be taken for the benchmark's target.
    options = StackOptions(mode="autonomous", target_job=f"target-ttr-{secrets.token_hex(3)}",
                           agent_env={
        "SRE_AGENT_COOLDOWN_S": "0", "SRE_AGENT_MAX_ACTIONS_PER_HOUR": "1000",
        "SRE_AGENT_MAX_ACTIONS_PER_TARGET_PER_HOUR": "1000", **llm_env})
    with tempfile.TemporaryDirectory(prefix="ttr-") as tmp, DemoStack(
            dataclasses.replace(options, work_dir=Path(tmp))) as stack:
        stack.wait_healthy(WAIT_S)
        runs = [one_run(stack, i, explained=bool(args.llm_url))
                for i in range(args.warmup + args.runs)]
        rules = rule_for_seconds(stack.rules)
    warmup, measured = runs[:args.warmup], runs[args.warmup:]

    scrape = float(options.scrape_interval_s)
    evaluation = float(options.evaluation_interval_s)
    group_wait = float(options.group_wait_s)
    rule_for = rules["TargetDown"]
    docker = median(measured, "docker_s")
    floor = scrape + rule_for + evaluation + group_wait + docker
    med = {k: median(measured, k) for k in ("detection_s", "agent_s", "docker_s",
                                            "confirmation_s", "ttr_s", "fault_to_resolved_s")}
    shares = [r["agent_s"] / r["ttr_s"] for r in measured]
    agent_share = statistics.median(shares)
    ratio = med["ttr_s"] / floor
    evidence_keys = sorted({k for r in measured for k in r["detail"]["evidence_ms"]})
    result = {
        "machine": machine(),
        "config": {"scrape_interval_s": scrape, "evaluation_interval_s": evaluation,
                   "target_down_for_s": rule_for, "group_wait_s": group_wait,
                   "group_interval_s": float(options.group_interval_s),
                   "target_traffic_rps": float(options.target_env.get("DEMO_TRAFFIC_RPS", 0)),
                   "mode": "autonomous", "engine": engine,
                   **({"llm_model": args.llm_model} if args.llm_url else {})},
        "runs_measured": len(measured), "runs_warmup": len(warmup),
        "median_s": med,
        "phase_share_of_ttr": {k: med[k] / med["ttr_s"]
                               for k in ("detection_s", "agent_s", "docker_s")},
        "agent_detail_median_s": {
            "evidence": statistics.median(r["detail"]["agent_evidence_s"] for r in measured),
            "gate_and_start": statistics.median(r["detail"]["agent_gate_and_start_s"]
                                                for r in measured)},
        "evidence_collector_median_ms": {
            k: statistics.median(r["detail"]["evidence_ms"].get(k, 0.0) for r in measured)
            for k in evidence_keys},
        "detection_detail_median_s": {
            k: statistics.median(float(r["detail"][k]) for r in measured
                                 if r["detail"][k] is not None)
            for k in ("fault_to_pending_s", "pending_to_firing_seen_s",
                      "firing_seen_to_webhook_s")},
        "floor": {
            "definition": "scrape_interval + TargetDown for + evaluation_interval + group_wait "
                          "+ docker start (median ActionStarted -> ActionSucceeded)",
            "seconds": floor,
            "parts_s": {"scrape_interval": scrape, "for": rule_for,
                        "evaluation_interval": evaluation, "group_wait": group_wait,
                        "docker_start": docker},
            "excludes": "the `resolved` notification (next group_interval after recovery) "
                        "and the verification, which follow the recovery",
        },
        **({"explanation_after_action_median_s": statistics.median(
            r["explanation_after_action_s"] for r in measured
            if r["explanation_after_action_s"] is not None) if any(
                r.get("explanation_after_action_s") is not None for r in measured) else None,
            "explanations_missing": sum(r.get("explanation_after_action_s") is None
                                        for r in measured)} if args.llm_url else {}),
        "agent_share_of_ttr": agent_share,
        "agent_share_of_ttr_per_run": shares,
        "ttr_over_floor": ratio,
        "targets": {"agent_share_max": 0.02, "ttr_over_floor_max": 1.3},
        "verdicts": {"agent_share": "met" if agent_share <= 0.02 else "not met",
                     "ttr_over_floor": "met" if ratio <= 1.3 else "not met"},
        "runs": measured, "warmup": warmup,
        "note": "TTR = fault injected -> ActionSucceeded (the container runs again); times are "
                "the agent's event timestamps, Prometheus' activeAt and Docker's StartedAt, "
                "all on this machine's clock. group_interval only delays the `resolved` "
                "notification (confirmation), not the recovery.",
    }
    result = rounded(result)
    path = write_result("time_to_recover_llm" if args.llm_url else "time_to_recover", result)
    print(json.dumps({k: v for k, v in result.items() if k not in ("runs", "warmup")},
                     indent=2))
    print(f"written to {path}")


if __name__ == "__main__":
    main()
