"""``sre-agent runbooks check`` and ``explain`` on user runbooks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sre_agent.cli import main
from tests.support.payloads import alert, notification

GOOD = """
runbooks:
  - name: orders-db-connections
    priority: 900
    match: {alertname: {regex: 'OrdersDb.*Connections.*'}}
    category: saturation
    summary: "{alertname}: orders DB {instance} near max_connections {value_note}"
    confidence: high
    actions:
      - {kind: notify, reason: "orders DB near its limit"}
    queries:
      ratio: 'max(pg_stat_activity_count{{instance="{instance}"}})'
  - name: our-kafka
    priority: 730
    match: {classified: {family: kafka}}
    category: from_classifier
    summary: "{alertname}: Kafka ({category})"
    confidence: medium
"""

BAD = """
runbooks:
  - name: broken-one
    category: nope
    summary: "{alertname!r}"
    confidence: high
    match: {alertname: {regex: "(unclosed"}, classified: {family: mysqll}}
    actions:
      - {kind: reboot_host}
      - {kind: restart_container}
  - name: fine
    category: latency
    summary: s
    confidence: 0.5
"""


def write(folder: Path, name: str, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)
    return folder


def test_check_accepts_good_runbooks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbooks", "check", str(write(tmp_path, "db.yml", GOOD))]) == 0
    out = capsys.readouterr().out
    assert "orders-db-connections (priority 900, saturation)" in out
    assert "2 runbook(s) in 1 file(s), 0 problem(s)" in out


def test_check_names_file_rule_and_field_for_every_problem(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = write(tmp_path, "bad.yml", BAD)
    write(folder, "yaml.yaml", "name: [unclosed\n")
    write(folder, "dup.yml", "{name: fine, category: errors, summary: s, confidence: 0.1}")
    assert main(["runbooks", "check", str(folder)]) == 1
    out = capsys.readouterr().out
    errors = [line for line in out.splitlines() if line.startswith("error")]
    where = f"{folder / 'bad.yml'}: runbook 'broken-one'"
    for field in ("category: Input should be", "summary: template placeholder",
                  "match.alertname.regex: invalid regular expression '(unclosed': missing )",
                  "match.classified.family: unknown family mysqll",
                  "actions.0.kind: Input should be 'restart_container'",
                  "actions.1: restart_container needs target: resolved"):
        assert any(line.startswith(f"error  {where}: {field}") for line in errors), (field, out)
    assert any("yaml.yaml: invalid YAML at line 2" in line for line in errors)
    assert any("runbook 'fine': name: also defined in" in line for line in errors)
    assert "Traceback" not in out


def test_check_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbooks", "check", str(tmp_path / "nope")]) == 2
    assert main(["runbooks", "check", str(tmp_path)]) == 1  # no runbook files at all
    assert "no *.yml" in capsys.readouterr().err


def payload(tmp_path: Path, name: str, expr: str, **labels: str) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(notification([alert(name=name, expr=expr, labels=labels,
                                                   annotations={"summary": name})])))
    return str(path)


def test_explain_shows_runbook_classifier_and_gate(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = payload(tmp_path, "HostOutOfDiskSpace", "node_filesystem_avail_bytes < 1",
                severity="warning", mountpoint="/")
    assert main(["runbooks", "explain", p, "--offline"]) == 0
    out = capsys.readouterr().out
    assert "classifier: capacity" in out and "node_filesystem_avail" in out
    assert "matched   : disk-full (priority 900, runbooks/resources.yml)" in out
    assert "gate      : escalate" in out


def test_explain_with_user_runbooks_and_json(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    folder = write(tmp_path / "rb", "db.yml", GOOD)
    p = payload(tmp_path, "KafkaConsumerGroupLag", "sum(kafka_consumergroup_lag) > 50",
                severity="warning")
    assert main(["runbooks", "explain", p, "--offline", "--json",
                 "--runbooks-dir", str(folder)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["classifier"]["family"] == "kafka"
    assert out["diagnosis"]["runbook"] == "our-kafka"
    assert out["diagnosis"]["category"] == "latency"
    assert out["tried"][-1]["origin"] == str(folder / "db.yml")
    assert out["tried"][-1]["outcome"].startswith("matched: classified latency")
    assert out["decisions"] == []  # our-kafka proposes nothing


def test_explain_a_classifier_answer(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = payload(tmp_path, "WidgetIngestErrorsIncreasing", "increase(widget_errors[5m]) > 0",
                severity="critical")
    assert main(["runbooks", "explain", p, "--offline"]) == 0
    out = capsys.readouterr().out
    assert "matched   : classifier (priority between 0 and -1, analysis/classifier.py)" in out
    assert "runbook classifier" in out and "gate      : escalate" in out


def test_explain_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runbooks", "explain", str(tmp_path / "nope.json"), "--offline"]) == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main(["runbooks", "explain", str(bad), "--offline"]) == 2
    err = capsys.readouterr().err
    assert "no such file" in err and "not an Alertmanager notification" in err
    assert "Traceback" not in err


def test_the_documented_examples_are_valid_runbooks(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "runbooks.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    assert len(blocks) >= 3
    for i, block in enumerate(blocks):
        (tmp_path / f"example{i}.yml").write_text(block)
    assert main(["runbooks", "check", str(tmp_path)]) == 0, capsys.readouterr().out
