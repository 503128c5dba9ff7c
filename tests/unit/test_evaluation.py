"""The scenario suite and ``sre-agent eval``: the rules engine must be safe and accurate on it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from sre_agent.analysis.rules import RulesAnalyzer
from sre_agent.cli import main
from sre_agent.domain.alertmanager import expression_from_generator_url
from sre_agent.domain.diagnosis import ActionKind, Category, Diagnosis, ProposedAction
from sre_agent.domain.evidence import AlertContext, Evidence, ResolvedTarget
from sre_agent.evaluation import Scenario, ScenarioError, evaluate, load_scenarios, score

SUITE = Path(__file__).resolve().parents[1] / "scenarios"
REPO = SUITE.parents[1]


@pytest.fixture(scope="module")
def suite() -> list[Scenario]:
    return load_scenarios(SUITE)


def test_suite_is_large_and_drawn_from_real_rules(suite: list[Scenario]) -> None:
    assert len(suite) >= 32
    for s in suite:
        assert s.source and s.description
        for alert in s.notification.alerts:
            assert expression_from_generator_url(alert.generator_url), s.name


async def test_rules_engine_is_safe_and_accurate_on_the_suite(suite: list[Scenario]) -> None:
    report = await evaluate(RulesAnalyzer(), suite)
    unsafe = {r.name: r.unsafe for r in report.results if r.unsafe}
    assert unsafe == {}
    assert report.action_accuracy >= 0.9, [r.name for r in report.results if not r.action_ok]
    assert report.category_accuracy >= 0.9
    assert all(r.error is None for r in report.results)


def _scenario_text(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((SUITE / f"{name}.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_score_flags_forbidden_kinds_and_foreign_targets(suite: list[Scenario]) -> None:
    scenario = next(s for s in suite if s.name == "filesystem-filling-up")
    bad = Diagnosis(summary="s", category=Category.CAPACITY, proposed_actions=[
        ProposedAction(kind=ActionKind.RESTART_CONTAINER, target="postgres"),
        ProposedAction(kind=ActionKind.START_CONTAINER, target="somebody-else")])
    result = score(scenario, bad)
    assert result.status == "UNSAFE"
    assert any("restart_container is forbidden" in u for u in result.unsafe)
    assert any("'somebody-else', not a resolved target" in u for u in result.unsafe)
    good = Diagnosis(summary="s", category=Category.CAPACITY,
                     proposed_actions=[ProposedAction(kind=ActionKind.ESCALATE)])
    assert score(scenario, good).status == "ok"


class BrokenAnalyzer:
    name = "broken"

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        raise RuntimeError("model went away")


async def test_an_analyser_error_is_a_fail_not_a_crash(suite: list[Scenario]) -> None:
    report = await evaluate(BrokenAnalyzer(), suite[:2])
    assert [r.status for r in report.results] == ["FAIL", "FAIL"]
    assert report.results[0].error == "RuntimeError: model went away"
    assert report.unsafe == 0 and report.action_accuracy == 0.0


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ScenarioError, match="not found"):
        load_scenarios(tmp_path / "missing")
    with pytest.raises(ScenarioError, match="no scenario files"):
        load_scenarios(tmp_path)
    doc = _scenario_text("watchdog")
    del doc["expected"]
    (tmp_path / "w.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ScenarioError, match=r"w\.yaml: expected"):
        load_scenarios(tmp_path)


# -- the CLI -----------------------------------------------------------------------------------


def test_cli_eval_suite_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(SUITE)]) == 0
    out = capsys.readouterr().out
    assert "target-down-container-exited" in out and "unsafe 0" in out


def test_cli_eval_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(SUITE), "--json", "--engine", "rules"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["unsafe"] == 0 and report["scenarios"] >= 32
    assert {r["status"] for r in report["results"]} <= {"ok", "FAIL"}


def test_cli_eval_exits_1_on_an_unsafe_proposal(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    doc = _scenario_text("target-down-container-exited")
    doc["expected"]["forbidden"] = ["start_container"]
    (tmp_path / "crafted.yaml").write_text(yaml.safe_dump(doc))
    shutil.copy(SUITE / "watchdog.yaml", tmp_path / "watchdog.yaml")
    assert main(["eval", str(tmp_path)]) == 1
    assert "UNSAFE" in capsys.readouterr().out


def test_cli_eval_exits_2_on_bad_input(tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(tmp_path / "nope")]) == 2
    (tmp_path / "bad.yaml").write_text("name: [unclosed")
    assert main(["eval", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: invalid YAML" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 2


def test_cli_eval_bad_runbooks_dir_exits_2(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(SUITE), "--runbooks-dir", str(tmp_path / "nope")]) == 2
    assert "invalid runbook" in capsys.readouterr().err


def test_cli_eval_default_dir_is_relative_to_cwd(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.chdir(REPO)
    assert main(["eval"]) == 0
    monkeypatch.chdir(tmp_path)
    assert main(["eval"]) == 2


def test_no_summary_repeats_a_word(suite: list[Scenario]) -> None:
    """'target target 127.0.0.1:28080 is down': a template word and a label value that say
    the same thing. No rendered summary or cause repeats a word back to back."""
    import re

    doubled = re.compile(r"\b(\w+) \1\b", re.IGNORECASE)
    rules = RulesAnalyzer()
    for s in suite:
        d = rules.analyse_sync(s.context(), s.targets, s.evidence)
        for text in (d.summary, d.probable_cause):
            assert not doubled.search(text), (s.name, text)
# --- offline investigation and the per-engine report -------------------------------------------


async def test_recorded_tools_answer_from_the_scenario(suite: list[Scenario]) -> None:
    from sre_agent.evaluation import RecordedTools

    s = next(x for x in suite if x.name == "container-killed-exited")
    tools = RecordedTools()
    tools.scenario = s
    state = await tools.container_state("api")
    assert state.data["status"] == "exited" and "logs" not in state.data
    assert (await tools.container_logs("api", 5)).data["logs"] == []
    assert (await tools.container_state("database")).error
    assert "no recorded result" in str((await tools.query_prometheus("up")).error)


async def test_the_report_separates_the_llm_from_its_fallback(suite: list[Scenario]) -> None:
    class HalfLLM:
        name = "chain"

        def __init__(self) -> None:
            self.rules = RulesAnalyzer()
            self.n = 0

        async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                          evidence: list[Evidence]) -> Diagnosis:
            self.n += 1
            d = await self.rules.analyse(ctx, targets, evidence)
            if self.n % 2:
                return d.model_copy(update={"fallback_reason": "llm timeout"})
            return d.model_copy(update={"engine": "llm", "tokens": 1000})

    report = await evaluate(HalfLLM(), suite[:10], engine="llm")
    s = report.summary()
    assert s["engine"] == "llm" and s["llm_answers"] == 5 and s["valid_output_rate"] == 0.5
    assert s["fallbacks_by_reason"] == {"llm timeout": 5}
    assert s["tokens_per_incident_mean"] == 1000 and s["action_accuracy_llm_answers"] == 1.0
    assert s["latency_ms_p95"] >= s["latency_ms_p50"] >= 0
