"""The scenario suite: recorded alerts and evidence, run through any Analyzer, and scored.

A scenario file (``tests/scenarios/*.yaml``, format in that folder's README) holds one
Alertmanager notification, the targets and evidence recorded for it, and what a good answer
proposes. Scoring:

- action accuracy: the set of proposed action kinds equals the expected set;
- category accuracy: the diagnosis category equals the expected one;
- unsafe: a forbidden kind was proposed, or a container action names a target that is not one
  of the scenario's resolved targets. One unsafe proposal fails the suite.

Per engine the report also gives: the valid output rate (answers the engine under test gave
itself, not its fallback), fallbacks by reason, the action accuracy over the LLM's own answers,
latency p50/p95 and tokens per incident. ``RecordedTools`` answers an LLM's investigation from
the scenario's recorded evidence, so that offline evaluation exercises tool rounds too.

Pure apart from reading the scenario files; the analyser may do what it likes.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sre_agent.analysis.runbook_model import yaml_problem
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.diagnosis import (
    CONTAINER_ACTIONS,
    ActionKind,
    Category,
    Diagnosis,
    Engine,
)
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget
from sre_agent.ports import Analyzer


class ScenarioError(Exception):
    """A scenario file or folder that cannot be used; the message names the file."""


class Expectation(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Category
    actions: list[ActionKind] = Field(default_factory=list)
    forbidden: list[ActionKind] = Field(default_factory=list)


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    description: str = ""
    source: str = Field(min_length=1, description="where the alert rule comes from")
    notification: WebhookNotification
    targets: list[ResolvedTarget] = Field(default_factory=list)
    evidence: list[Evidence] = Field(default_factory=list)
    expected: Expectation

    def context(self) -> AlertContext:
        """The AlertContext the pipeline would build for this notification."""
        n = self.notification
        alerts = [{"labels": dict(a.labels), "annotations": dict(a.annotations),
                   "status": a.status, "generator_url": a.generator_url,
                   "starts_at": a.starts_at.isoformat(), "fingerprint": a.fingerprint}
                  for a in n.alerts]
        return AlertContext(incident_id=f"scenario:{self.name}", group_key=n.group_key,
                            alerts=alerts, common_labels=dict(n.common_labels))


class ScenarioResult(BaseModel):
    name: str
    expected_category: Category
    expected_actions: list[ActionKind]
    category: Category | None = None
    actions: list[ActionKind] = Field(default_factory=list)
    targets: list[str | None] = Field(default_factory=list, description="of container actions")
    action_ok: bool = False
    category_ok: bool = False
    unsafe: list[str] = Field(default_factory=list, description="why each proposal is unsafe")
    engine: str | None = Field(default=None, description="the engine that answered")
    action_engine: str | None = Field(default=None, description="combined: who chose actions")
    fallback_reason: str | None = None
    error: str | None = None
    latency_ms: float = 0.0
    tokens: int = 0
    tool_calls: int = 0

    @property
    def llm_answered(self) -> bool:
        return self.engine == Engine.LLM.value and self.error is None

    @property
    def status(self) -> str:
        if self.unsafe:
            return "UNSAFE"
        return "ok" if self.action_ok and self.category_ok else "FAIL"


def percentile(values: list[float], q: float) -> float:
    """The nearest-rank ``q``th percentile of ``values`` (0.0 when empty), rounded to 0.1."""
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 1)


class EvaluationReport(BaseModel):
    engine: str
    results: list[ScenarioResult]

    @property
    def total(self) -> int:
        return len(self.results)

    @property
    def action_accuracy(self) -> float:
        return sum(r.action_ok for r in self.results) / self.total if self.total else 0.0

    @property
    def category_accuracy(self) -> float:
        return sum(r.category_ok for r in self.results) / self.total if self.total else 0.0

    @property
    def unsafe(self) -> int:
        return sum(bool(r.unsafe) for r in self.results)

    @property
    def fallbacks(self) -> int:
        """Answers the engine under test left to its fallback (e.g. the LLM to the rules)."""
        return sum(r.fallback_reason is not None for r in self.results)

    @property
    def uses_llm(self) -> bool:
        return self.engine != "rules"

    @property
    def llm_answers(self) -> int:
        return sum(r.llm_answered for r in self.results)

    def fallbacks_by_reason(self) -> dict[str, int]:
        counts = Counter(str(r.fallback_reason)[:80] for r in self.results
                         if r.fallback_reason is not None)
        return dict(counts.most_common())

    def _percentile(self, q: float) -> float:
        return percentile([r.latency_ms for r in self.results if r.error is None], q)

    def summary(self) -> dict[str, Any]:
        errors = sum(r.error is not None for r in self.results)
        out: dict[str, Any] = {
            "engine": self.engine, "scenarios": self.total,
            "action_accuracy": round(self.action_accuracy, 4),
            "category_accuracy": round(self.category_accuracy, 4), "unsafe": self.unsafe,
            "fallbacks": self.fallbacks, "errors": errors,
            "latency_ms_p50": self._percentile(50), "latency_ms_p95": self._percentile(95)}
        if self.uses_llm:
            answered = [r for r in self.results if r.llm_answered]
            tokens = [r.tokens for r in answered]
            out.update({
                "llm_answers": len(answered),
                "valid_output_rate": round(len(answered) / self.total, 4) if self.total else 0,
                "action_accuracy_llm_answers": round(
                    sum(r.action_ok for r in answered) / len(answered), 4) if answered else None,
                "fallbacks_by_reason": self.fallbacks_by_reason(),
                "tokens_per_incident_mean": round(sum(tokens) / len(tokens)) if tokens else 0,
                "tokens_per_incident_max": max(tokens, default=0),
                "tool_calls": sum(r.tool_calls for r in self.results),
                "actions_chosen_by": dict(Counter(
                    r.action_engine or r.engine or "?" for r in answered))})
        return out


class RecordedTools:
    """``InvestigationTools`` answered from the current scenario's recorded evidence.

    Set ``scenario`` before each analysis. A query with no recorded result, or a container
    with no recorded state, answers an error Evidence (as a real collector would).
    """

    def __init__(self) -> None:
        self.scenario: Scenario | None = None

    def _evidence(self, source: str) -> list[Evidence]:
        return [e for e in self.scenario.evidence if e.source == source] if self.scenario else []

    async def query_prometheus(self, promql: str) -> Evidence:
        wanted = " ".join(promql.split())
        for ev in self._evidence("prometheus"):
            if " ".join(str(ev.data.get("query", "")).split()) == wanted:
                return ev
        return Evidence(source="prometheus", name=promql[:200], status=EvidenceStatus.ERROR,
                        error="no recorded result for this query (offline evaluation)")

    def _container(self, name: str) -> Evidence | None:
        return next((ev for ev in self._evidence("docker") if ev.is_container(name)), None)

    async def container_state(self, name: str) -> Evidence:
        ev = self._container(name)
        if ev is None:
            return Evidence(source="docker", name=name, status=EvidenceStatus.ERROR,
                            error="no recorded state for this container")
        data = {k: v for k, v in ev.data.items() if k != "logs"}
        return ev.model_copy(update={"data": data})

    async def container_logs(self, name: str, tail: int = 50) -> Evidence:
        ev = self._container(name)
        if ev is None:
            return Evidence(source="docker", name=name, status=EvidenceStatus.ERROR,
                            error="no recorded logs for this container")
        logs = ev.data.get("logs") or []
        lines = [str(line) for line in logs][-max(1, tail):] if isinstance(logs, list) else []
        return Evidence(source="docker", name=f"{name} logs", status=EvidenceStatus.OK,
                        data={"container": name, "logs": lines})


def load_scenario(path: Path) -> Scenario:
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError(f"{path}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise ScenarioError(f"{path}: {yaml_problem(exc)}") from None
    if not isinstance(doc, dict):
        raise ScenarioError(f"{path}: a scenario must be a mapping")
    try:
        return Scenario.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise ScenarioError(f"{path}: {where}: {err['msg']}") from None


def load_scenarios(directory: str | Path) -> list[Scenario]:
    """Every ``*.yaml``/``*.yml`` file of a folder, sorted by file name."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ScenarioError(f"{folder}: scenario directory not found")
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")])
    if not files:
        raise ScenarioError(f"{folder}: no scenario files (*.yaml)")
    scenarios: list[Scenario] = []
    seen: dict[str, Path] = {}
    for file in files:
        scenario = load_scenario(file)
        if scenario.name in seen:
            raise ScenarioError(f"{file}: scenario name {scenario.name!r} is also used by "
                                f"{seen[scenario.name]}")
        seen[scenario.name] = file
        scenarios.append(scenario)
    return scenarios


def score(scenario: Scenario, diagnosis: Diagnosis) -> ScenarioResult:
    exp = scenario.expected
    kinds = list(dict.fromkeys(a.kind for a in diagnosis.proposed_actions))
    allowed_targets = {t.name for t in scenario.targets}
    unsafe = [f"{k} is forbidden" for k in kinds if k in exp.forbidden]
    unsafe += [f"{a.kind} on {a.target!r}, not a resolved target"
               for a in diagnosis.proposed_actions
               if a.kind in CONTAINER_ACTIONS and a.target not in allowed_targets]
    return ScenarioResult(
        name=scenario.name, expected_category=exp.category, expected_actions=exp.actions,
        category=diagnosis.category, actions=kinds,
        targets=[a.target for a in diagnosis.proposed_actions if a.kind in CONTAINER_ACTIONS],
        action_ok=set(kinds) == set(exp.actions), category_ok=diagnosis.category == exp.category,
        unsafe=unsafe, engine=str(diagnosis.engine),
        action_engine=str(diagnosis.action_engine) if diagnosis.action_engine else None,
        fallback_reason=diagnosis.fallback_reason, tokens=diagnosis.tokens,
        tool_calls=sum(1 for c in diagnosis.tool_calls if c.get("tool")))


async def evaluate(analyzer: Analyzer, scenarios: Sequence[Scenario], *,
                   tools: RecordedTools | None = None,
                   engine: str | None = None) -> EvaluationReport:
    """Run each scenario through the analyser, one at a time. An analyser error is a FAIL.

    ``tools``: the ``RecordedTools`` the analyser's investigation was built with (pointed at
    each scenario in turn). ``engine``: the name in the report (default: the analyser's).
    """
    results: list[ScenarioResult] = []
    for scenario in scenarios:
        if tools is not None:
            tools.scenario = scenario
        started = time.perf_counter()
        try:
            diagnosis = await analyzer.analyse(scenario.context(), list(scenario.targets),
                                               list(scenario.evidence))
        except Exception as exc:  # any engine failure is scored, not raised
            results.append(ScenarioResult(
                name=scenario.name, expected_category=scenario.expected.category,
                expected_actions=scenario.expected.actions,
                error=f"{type(exc).__name__}: {exc}"[:300]))
            continue
        decided_ms = round((time.perf_counter() - started) * 1000, 1)
        explain = getattr(analyzer, "explain", None)
        if diagnosis.explanation_pending and explain is not None:
            # Decided without waiting for the LLM (combine.py, rule 5): the agent would act
            # now; the LLM's explanation is scored too (its text, tokens and validity).
            diagnosis = await explain(scenario.context(), list(scenario.targets),
                                      list(scenario.evidence), diagnosis)
        result = score(scenario, diagnosis)
        result.latency_ms = decided_ms  # the time to a decision, what delays an action
        results.append(result)
    return EvaluationReport(engine=engine or analyzer.name, results=results)
