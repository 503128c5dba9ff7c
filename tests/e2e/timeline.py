"""Timelines of the end-to-end scenarios, and the polling helpers they are built from.

A ``Timeline`` is a list of named moments (Unix times) on one clock: the test's own marks
(fault injected), Prometheus' view (``AlertWatcher`` polls ``/api/v1/alerts``), the agent's
event log (``AlertReceived`` … ``IncidentResolved``) and Docker's (``State.StartedAt`` and the
health-check log). ``render()`` prints it with offsets from the first moment; ``save()`` writes
it as JSON under ``test-artifacts/e2e/``. The benchmark (benchmarks/time_to_recover.py) uses the
same code.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sre_agent.demo.processes import parse_time
from sre_agent.demo.stack import DemoStack, Target

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
T = TypeVar("T")

# Agent events shown on a timeline, with their labels (first occurrence in the incident).
AGENT_EVENTS = (
    ("AlertReceived", "webhook received (AlertReceived)"),
    ("DiagnosisProduced", "diagnosis produced"),
    ("ActionAwaitingApproval", "action awaiting approval"),
    ("ActionApproved", "action approved by operator"),
    ("ActionBlocked", "action blocked by the gate"),
    ("IncidentEscalated", "incident escalated"),
    ("ActionStarted", "action started (ActionStarted)"),
    ("ActionSucceeded", "action succeeded (ActionSucceeded)"),
    ("VerificationPassed", "verification passed"),
    ("AlertResolved", "resolved webhook received (AlertResolved)"),
    ("IncidentResolved", "incident resolved"),
)


def poll(fn: Callable[[], T | None], timeout: float, what: str, interval: float = 0.25) -> T:
    """Call ``fn`` until it returns something truthy; return that, or fail after ``timeout``.
    Exceptions count as "not yet" (a component may be restarting) and the last one is shown."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            value = fn()
            if value:
                return value
        except Exception as exc:  # retried until the deadline
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not reached within {timeout:g}s"
                                 + (f" (last error: {last!r})" if last else ""))
        time.sleep(interval)


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds")


@dataclass
class Timeline:
    name: str
    marks: list[tuple[str, float]] = field(default_factory=list)

    def mark(self, what: str, at: float | None = None) -> float:
        moment = time.time() if at is None else at
        self.marks.append((what, moment))
        return moment

    def at(self, what: str) -> float | None:
        """The first moment whose label starts with ``what``."""
        for label, moment in self.marks:
            if label.startswith(what):
                return moment
        return None

    def span(self, start: str, end: str) -> float | None:
        a, b = self.at(start), self.at(end)
        return None if a is None or b is None else b - a

    def add_agent_events(self, events: Iterable[dict[str, Any]],
                         labels: Iterable[tuple[str, str]] = AGENT_EVENTS) -> None:
        """The first event of each type in ``labels`` (events of one incident)."""
        first: dict[str, float] = {}
        for event in events:
            first.setdefault(str(event["type"]), parse_time(str(event["at"])))
        for event_type, label in labels:
            if event_type in first:
                self.mark(label, first[event_type])

    def add_container(self, target: Target, after: float) -> None:
        """When the container was (re)started after ``after``, and its first passing health
        check after that."""
        state = target.state()
        started = parse_time(str(state.get("StartedAt")))
        if started <= after:
            return
        self.mark(f"container running again ({target.name})", started)
        log = (state.get("Health") or {}).get("Log") or []
        healthy = [parse_time(str(e["End"])) for e in log
                   if e.get("ExitCode") == 0 and parse_time(str(e["Start"])) >= started]
        if healthy:
            self.mark("container healthy again (health check passed)", min(healthy))

    def ordered(self) -> list[tuple[str, float]]:
        return sorted(self.marks, key=lambda m: m[1])

    def render(self) -> str:
        marks = self.ordered()
        if not marks:
            return f"timeline {self.name}: (empty)"
        t0 = marks[0][1]
        lines = [f"timeline {self.name} (t0 = {iso(t0)})"]
        previous = t0
        for what, moment in marks:
            lines.append(f"  +{moment - t0:7.3f}s  (+{moment - previous:6.3f}s)  {what}")
            previous = moment
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        marks = self.ordered()
        t0 = marks[0][1] if marks else 0.0
        return {"name": self.name, "t0": iso(t0) if marks else None,
                "marks": [{"what": w, "at": iso(m), "offset_s": round(m - t0, 3)}
                          for w, m in marks]}

    def save(self, folder: Path = ARTIFACTS) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{self.name}.json"
        path.write_text(json.dumps(self.as_dict(), indent=2) + "\n")
        return path

    def report(self) -> str:
        """Print the timeline (pytest shows it with -s, and in the report of a failure) and
        save it as JSON; returns the text."""
        text = self.render()
        path = self.save()
        print(f"\n{text}\n  (saved to {path})")
        return text


class AlertWatcher:
    """Polls Prometheus' ``/api/v1/alerts`` in a thread and records, per alert name, its
    ``activeAt`` (start of pending) and when it was first seen firing. A context manager."""

    def __init__(self, stack: DemoStack, timeline: Timeline | None = None,
                 interval: float = 0.2) -> None:
        self.stack = stack
        self.timeline = timeline
        self.interval = interval
        self.active_at: dict[str, float] = {}
        self.firing_at: dict[str, float] = {}
        self.pending_seen_at: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alert-watcher", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            try:
                alerts = self.stack.prometheus_alerts()
            except Exception:  # Prometheus busy or restarting: try again
                alerts = []
            with self._lock:
                for alert in alerts:
                    name = str(alert["labels"].get("alertname"))
                    if name not in self.active_at and alert.get("activeAt"):
                        self.active_at[name] = parse_time(str(alert["activeAt"]))
                    if alert.get("state") == "pending":
                        self.pending_seen_at.setdefault(name, now)
                    if alert.get("state") == "firing":
                        self.firing_at.setdefault(name, now)
            self._stop.wait(self.interval)

    def __enter__(self) -> AlertWatcher:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        if self.timeline is not None:
            self.record(self.timeline)

    def wait(self, alertname: str, state: str = "firing", timeout: float = 90.0) -> float:
        """Until ``alertname`` was seen in ``state`` (pending or firing); returns when."""
        table = self.firing_at if state == "firing" else self.pending_seen_at

        def seen() -> float | None:
            with self._lock:
                return table.get(alertname) or (self.firing_at.get(alertname)
                                                 if state == "pending" else None)
        return poll(seen, timeout, f"{alertname} {state} in Prometheus", interval=0.1)

    def record(self, timeline: Timeline, names: Iterable[str] | None = None) -> None:
        with self._lock:
            for name in names or sorted(set(self.active_at) | set(self.firing_at)):
                if name in self.active_at:
                    timeline.mark(f"{name} pending in Prometheus (activeAt)",
                                  self.active_at[name])
                if name in self.firing_at:
                    timeline.mark(f"{name} firing in Prometheus (first seen)",
                                  self.firing_at[name])


# --- the agent's log, read through its API ------------------------------------------------------

def incident_of(stack: DemoStack, alertname: str, *, after: float = 0.0,
                instance: str | None = None) -> str | None:
    """The incident holding the first firing ``alertname`` received after ``after``."""
    for event in stack.events(types=["AlertReceived"]):
        labels = event["data"].get("labels") or {}
        if labels.get("alertname") != alertname:
            continue
        if instance is not None and labels.get("instance") != instance:
            continue
        if parse_time(str(event["at"])) >= after:
            return str(event["incident_id"])
    return None


def wait_incident(stack: DemoStack, alertname: str, *, after: float, timeout: float = 90.0,
                  instance: str | None = None) -> str:
    return poll(lambda: incident_of(stack, alertname, after=after, instance=instance), timeout,
                f"an incident for {alertname}")


def event_types(stack: DemoStack, incident: str) -> list[str]:
    return [str(e["type"]) for e in stack.events(incident=incident)]


def wait_event(stack: DemoStack, incident: str, event_type: str,
               timeout: float = 90.0) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        return next((e for e in stack.events(incident=incident) if e["type"] == event_type),
                    None)
    return poll(found, timeout, f"{event_type} in incident {incident}", interval=0.3)
