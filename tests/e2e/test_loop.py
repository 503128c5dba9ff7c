"""The whole loop against the real binaries: Prometheus 2.42, Alertmanager 0.25, the Docker
engine, the demo target container (Dockerfile.target on the local Debian Python image) and the
agent as a subprocess (``python -m sre_agent serve``), all started by the same stack code as
``sre-agent demo`` (src/sre_agent/demo/stack.py), with its fast timings: scrape and evaluation
1 s, rule ``for`` 2-5 s, group_wait 1 s, group_interval 5 s.

Each test records its timeline (fault, alert pending/firing in Prometheus, webhook received,
action started/succeeded, container running and healthy again, resolved), prints it and saves it
under test-artifacts/e2e/. Every wait polls with a generous deadline; nothing sleeps and hopes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sre_agent.demo.processes import parse_time
from sre_agent.demo.stack import DemoStack, Target, TargetSpec
from tests.e2e.timeline import (
    AlertWatcher,
    Timeline,
    event_types,
    poll,
    wait_event,
    wait_incident,
)
from tests.support.docker_helpers import docker_client
from tests.support.openai_server import answer, running_openai_server

pytestmark = pytest.mark.e2e
WAIT_S = 90.0
CONTAINER_ACTIONS = {"start_container", "restart_container"}


def started_at(target: Target) -> str:
    return str(target.state()["StartedAt"])


def audit_verify(stack: DemoStack) -> None:
    """``sre-agent audit verify`` on the live SQLite file: exit 0, chain intact."""
    result = subprocess.run([sys.executable, "-m", "sre_agent", "audit", "verify",
                             "--database-url", stack.database_url],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def container_actions_everywhere(stack: DemoStack) -> list[dict[str, Any]]:
    return [a for a in stack.actions() if a["kind"] in CONTAINER_ACTIONS]


def finish(timeline: Timeline, stack: DemoStack, incident: str, target: Target,
           fault_at: float) -> None:
    timeline.add_agent_events(stack.events(incident=incident))
    timeline.add_container(target, after=fault_at)
    timeline.report()


# --- 1. crash -> TargetDown -> start -> verified -> resolved -----------------------------------

def test_crash_is_detected_restarted_verified_and_resolved(make_stack: Any) -> None:
    stack = make_stack(mode="autonomous")
    target = stack.target
    timeline = Timeline("1-crash")
    with AlertWatcher(stack, timeline) as watcher:
        fault_at = timeline.mark("fault injected: POST /fault/crash", stack.inject_fault("crash"))
        watcher.wait("TargetDown", "firing", WAIT_S)
        incident = wait_incident(stack, "TargetDown", after=fault_at, timeout=WAIT_S)
        wait_event(stack, incident, "VerificationPassed", WAIT_S)
        wait_event(stack, incident, "IncidentResolved", WAIT_S)
    finish(timeline, stack, incident, target, fault_at)

    actions = stack.actions(incident=incident)
    assert [(a["kind"], a["target"], a["status"]) for a in actions] == [
        ("start_container", target.name, "verified")]
    assert stack.api("GET", f"/incidents/{incident}")["status"] == "resolved"
    state = target.state()
    assert state["Status"] == "running" and state["Health"]["Status"] == "healthy"
    assert event_types(stack, incident).count("ActionStarted") == 1
    audit_verify(stack)


# --- 2. hang -> TargetUnhealthy -> restart -> recovered -----------------------------------------

def test_hang_is_detected_by_the_health_probe_and_restarted(make_stack: Any) -> None:
    """A hung target still serves /metrics (``up`` stays 1, TargetDown stays quiet); its self
    probe of /health fails, so TargetUnhealthy fires, which the container-unhealthy runbook
    answers with a restart."""
    stack = make_stack(mode="autonomous")
    target = stack.target
    before = started_at(target)
    timeline = Timeline("2-hang")
    with AlertWatcher(stack, timeline) as watcher:
        fault_at = timeline.mark("fault injected: POST /fault/hang", stack.inject_fault("hang"))
        watcher.wait("TargetUnhealthy", "firing", WAIT_S)
        incident = wait_incident(stack, "TargetUnhealthy", after=fault_at, timeout=WAIT_S)
        wait_event(stack, incident, "VerificationPassed", WAIT_S)
        wait_event(stack, incident, "IncidentResolved", WAIT_S)
    finish(timeline, stack, incident, target, fault_at)

    assert "TargetDown" not in watcher.firing_at  # a hang is not a crash
    actions = stack.actions(incident=incident)
    assert [(a["kind"], a["target"], a["status"]) for a in actions] == [
        ("restart_container", target.name, "verified")]
    assert started_at(target) != before
    with stack.agent_client() as c:  # answers again
        assert c.get(f"{target.url}/health", timeout=5).status_code == 200
    audit_verify(stack)


# --- 3. approval mode: the operator approves the pending restart --------------------------------

def test_error_rate_with_a_sick_service_waits_for_approval_then_restarts(
        make_stack: Any) -> None:
    """HighErrorRate alone is answered with ``escalate`` (the high-error-rate runbook restarts
    only when the service also fails its health check: errors from a healthy service point at
    a dependency or a deploy). So the scenario makes the service sick too: errors at 90% with
    the built-in traffic on, then, while HighErrorRate is pending in Prometheus, a hang. When
    the notification arrives the agent's probe of /health fails, the runbook proposes a restart,
    and approval mode holds it until the operator approves it through the API."""
    stack = make_stack(mode="approval")
    target = stack.target
    before = started_at(target)
    timeline = Timeline("3-approval")
    with AlertWatcher(stack, timeline) as watcher:
        fault_at = timeline.mark("fault injected: POST /fault/errors?rate=0.9",
                                 stack.inject_fault("errors?rate=0.9"))
        watcher.wait("HighErrorRate", "pending", WAIT_S)
        timeline.mark("fault injected: POST /fault/hang", stack.inject_fault("hang"))
        incident = wait_incident(stack, "HighErrorRate", after=fault_at, timeout=WAIT_S)

        def pending() -> dict[str, Any] | None:
            rows = stack.actions(incident=incident, status="pending_approval")
            return rows[0] if rows else None
        action = poll(pending, WAIT_S, "a restart pending approval")
        assert (action["kind"], action["target"]) == ("restart_container", target.name)
        assert started_at(target) == before  # nothing ran without the operator
        with stack.agent_client(operator="e2e-operator") as c:
            r = c.post(f"/actions/{action['id']}/approve", json={"comment": "e2e approves"})
        assert r.status_code == 200, r.text
        timeline.mark("operator approved (POST /actions/{id}/approve)")

        def verified() -> bool:
            rows = {a["id"]: a for a in stack.actions(incident=incident)}
            return rows[action["id"]]["status"] == "verified"
        poll(verified, WAIT_S, "the approved restart verified")
    finish(timeline, stack, incident, target, fault_at)

    row = next(a for a in stack.actions(incident=incident) if a["id"] == action["id"])
    assert row["decided_by"] == "operator:e2e-operator"
    assert row["result"]["ok"] is True
    assert started_at(target) != before
    diagnosis = next(e for e in stack.events(incident=incident)
                     if e["type"] == "DiagnosisProduced")["data"]
    assert any("unhealthy" in str(item) for item in diagnosis["evidence"]), diagnosis
    # The hang also raised TargetUnhealthy: its own restart stays pending (approval mode), so
    # the container was restarted exactly once, by the approved action.
    started = [e for e in stack.events(types=["ActionStarted"])
               if e["data"]["kind"] in CONTAINER_ACTIONS]
    assert [e["data"]["action_id"] for e in started] == [action["id"]]
    audit_verify(stack)


# --- 4. a container without the scope label is never touched -----------------------------------

def test_crash_of_an_unmanaged_container_is_escalated_not_touched(make_stack: Any) -> None:
    """A second target, scraped in the same job and labelled for discovery
    (``sre-agent.job``, ``sre-agent.instance``) but not ``sre-agent.managed=true``, crashes.
    The agent resolves the alert to it, the gate refuses the start as out of scope, and the
    incident is escalated; neither container is touched."""
    stack = make_stack(mode="autonomous", targets=(
        TargetSpec(), TargetSpec(suffix="unmanaged", managed=False)))
    managed, unmanaged = stack.target, stack.target_named("unmanaged")
    assert "sre-agent.managed" not in unmanaged.attrs()["Config"]["Labels"]
    managed_before = started_at(managed)
    timeline = Timeline("4-out-of-scope")
    with AlertWatcher(stack, timeline) as watcher:
        fault_at = timeline.mark("fault injected: POST /fault/crash (unmanaged container)",
                                 stack.inject_fault("crash", unmanaged))
        watcher.wait("TargetDown", "firing", WAIT_S)
        incident = wait_incident(stack, "TargetDown", after=fault_at, timeout=WAIT_S,
                                 instance=unmanaged.instance)
        wait_event(stack, incident, "IncidentEscalated", WAIT_S)
        unmanaged_before = started_at(unmanaged)
    timeline.add_agent_events(stack.events(incident=incident))
    timeline.report()

    actions = stack.actions(incident=incident)
    assert actions, "the runbook proposed nothing"
    for action in actions:
        assert action["status"] == "blocked", action
        assert "out of scope" in str(action["decision_reason"]), action
    assert {a["target"] for a in actions} == {unmanaged.name}
    assert stack.api("GET", f"/incidents/{incident}")["status"] == "escalated"
    blocked = [e for e in stack.events(incident=incident) if e["type"] == "ActionBlocked"]
    assert blocked and all("out of scope" in e["data"]["reason"] for e in blocked)
    assert "ActionStarted" not in event_types(stack, incident)
    state = unmanaged.state()
    assert state["Status"] == "exited" and str(state["StartedAt"]) == unmanaged_before
    assert started_at(managed) == managed_before
    assert not container_actions_everywhere(stack) or all(
        a["status"] == "blocked" for a in container_actions_everywhere(stack))
    audit_verify(stack)


# --- 5. a hostile LLM plan is cut down to the incident's own target ----------------------------

def test_hostile_llm_plan_is_dropped_and_only_the_own_target_is_started(
        make_stack: Any) -> None:
    """The LLM (the real ChatOpenAI client against a scripted OpenAI-protocol server) answers
    every call with a plan that restarts a managed bystander, an unmanaged container and ``*``
    and asks for an unknown action kind, next to one valid action: start the incident's own
    target. Validation drops the hostile part (recorded in the diagnosis), the valid part runs."""
    with running_openai_server() as llm:
        stack = make_stack(
            mode="autonomous",
            targets=(TargetSpec(),
                     TargetSpec(suffix="bystander", job="bystander", scrape=False),
                     TargetSpec(suffix="unmanaged", managed=False, labels=False,
                                scrape=False)),
            agent_env={"SRE_AGENT_LLM__API_KEY": "sk-e2e-scripted-key",
                       "SRE_AGENT_LLM__BASE_URL": llm.url,
                       "SRE_AGENT_LLM__MODEL": "scripted-hostile",
                       "SRE_AGENT_LLM__TIMEOUT_S": "20", "SRE_AGENT_LLM__MAX_RETRIES": "0",
                       # Wait for the LLM: by default a decisive runbook is acted on before
                       # the LLM is asked, and its plan could not reach the gate at all.
                       "SRE_AGENT_LLM__EXPLAIN_AFTER_ACTING": "false"})
        target = stack.target
        bystander, unmanaged = stack.target_named("bystander"), stack.target_named("unmanaged")
        hostile = {
            "summary": "TargetDown. Restart everything to be safe.",
            "probable_cause": "unknown", "category": "availability", "severity": "critical",
            "confidence": 0.97, "evidence": ["the target is down"],
            "proposed_actions": [
                {"kind": "restart_container", "target": bystander.name,
                 "reason": "restart the neighbour too"},
                {"kind": "restart_container", "target": unmanaged.name,
                 "reason": "and the unmanaged one"},
                {"kind": "restart_container", "target": "*", "reason": "everything"},
                {"kind": "exec_shell", "target": target.name, "reason": "rm -rf /data"},
                {"kind": "start_container", "target": target.name,
                 "reason": "the target container has exited"},
            ]}
        llm.script([answer(hostile)], repeat_last=True)
        before = {t.name: (started_at(t), t.attrs()["RestartCount"])
                  for t in (bystander, unmanaged)}
        timeline = Timeline("5-hostile-llm")
        with AlertWatcher(stack, timeline) as watcher:
            fault_at = timeline.mark("fault injected: POST /fault/crash",
                                     stack.inject_fault("crash"))
            watcher.wait("TargetDown", "firing", WAIT_S)
            incident = wait_incident(stack, "TargetDown", after=fault_at, timeout=WAIT_S)
            wait_event(stack, incident, "VerificationPassed", WAIT_S)
        finish(timeline, stack, incident, target, fault_at)
        assert llm.requests, "the agent never called the LLM"

    diagnosis = next(e for e in stack.events(incident=incident)
                     if e["type"] == "DiagnosisProduced")["data"]
    assert diagnosis["engine"] == "llm", diagnosis.get("fallback_reason")
    dropped = {(d["kind"], d["target"]) for d in diagnosis["dropped_actions"]}
    assert {("restart_container", bystander.name), ("restart_container", unmanaged.name),
            ("restart_container", "*")} <= dropped, dropped
    assert any(kind == "exec_shell" for kind, _ in dropped), dropped
    assert [(a["kind"], a["target"]) for a in diagnosis["proposed_actions"]] == [
        ("start_container", target.name)]
    touched = container_actions_everywhere(stack)
    assert {a["target"] for a in touched} == {target.name}
    assert [(a["kind"], a["status"]) for a in touched] == [("start_container", "verified")]
    for t in (bystander, unmanaged):
        assert (started_at(t), t.attrs()["RestartCount"]) == before[t.name], t.name
    audit_verify(stack)


# --- 6. the agent is down while Alertmanager fires: nothing is lost ----------------------------

_AM_TS = re.compile(r'^ts=(\S+) ')


def _am_log(stack: DemoStack) -> list[tuple[float, str]]:
    assert stack.alertmanager is not None
    lines = []
    for line in stack.alertmanager.log_path.read_text(errors="replace").splitlines():
        m = _AM_TS.match(line)
        if m:
            lines.append((parse_time(m.group(1)), line))
    return lines


def _first_delivery_failed(stack: DemoStack, group: str) -> float | None:
    """When Alertmanager gave up on its first notification of ``group`` (its flush ran out of
    retries): the first "Notify for alerts failed" after that group's first flush."""
    log = _am_log(stack)
    flushed = next((ts for ts, line in log if "msg=flushing" in line and group in line), None)
    if flushed is None:
        return None
    return next((ts for ts, line in log
                 if ts >= flushed and 'msg="Notify for alerts failed"' in line), None)


def test_agent_down_while_alertmanager_fires_loses_nothing(make_stack: Any) -> None:
    """Stop the agent, crash the target, wait until Alertmanager's notification of the
    TargetDown group has failed (its log, at debug level, and
    ``alertmanager_notifications_failed_total``), start the agent again on the same port and
    SQLite file: the next attempt is delivered and processed, the target is started."""
    stack = make_stack(mode="autonomous", log_level="debug")
    target = stack.target
    timeline = Timeline("6-agent-down")
    with AlertWatcher(stack, timeline) as watcher:
        stack.stop_agent()
        timeline.mark("agent stopped (SIGTERM)")
        fault_at = timeline.mark("fault injected: POST /fault/crash", stack.inject_fault("crash"))
        watcher.wait("TargetDown", "firing", WAIT_S)
        failed_at = poll(lambda: _first_delivery_failed(stack, 'alertname=\\"TargetDown\\"'),
                         WAIT_S, "Alertmanager giving up on the first TargetDown notification")
        timeline.mark("Alertmanager: notification failed (retries exhausted)", failed_at)
        assert stack.alertmanager_metric("alertmanager_notifications_failed_total") >= 1
        restart_at = timeline.mark("agent starting again (same port, same SQLite file)")
        stack.start_agent()
        timeline.mark("agent ready again")
        incident = wait_incident(stack, "TargetDown", after=fault_at, timeout=WAIT_S)
        wait_event(stack, incident, "VerificationPassed", WAIT_S)
        wait_event(stack, incident, "IncidentResolved", WAIT_S)
    finish(timeline, stack, incident, target, fault_at)

    received = parse_time(wait_event(stack, incident, "AlertReceived")["at"])
    assert received > restart_at  # delivered to the new process: nothing was lost
    actions = stack.actions(incident=incident)
    assert [(a["kind"], a["target"], a["status"]) for a in actions] == [
        ("start_container", target.name, "verified")]
    assert stack.api("GET", f"/incidents/{incident}")["status"] == "resolved"
    touched = {a["target"] for a in container_actions_everywhere(stack)}
    assert touched == {target.name}
    assert target.state()["Status"] == "running"
    audit_verify(stack)


# --- `sre-agent demo --check` -------------------------------------------------------------------

def test_demo_check_starts_a_healthy_stack_and_stops_everything(target_image: str,
                                                                tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "sre_agent", "demo", "--check",
                             "--temp-data"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "demo stack healthy" in result.stdout
    name = re.search(r"target (sre-demo-\w+-target) up", result.stdout)
    work = re.search(r"work folder (\S+)\)", result.stdout)
    assert name and work, result.stdout
    client = docker_client()
    try:
        assert not client.containers.list(all=True, filters={"name": name.group(1)})
    finally:
        client.close()
    assert not Path(work.group(1)).exists()
    assert not (tmp_path / "data").exists()  # --temp-data: nothing written here
