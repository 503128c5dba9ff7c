"""The Markdown post-incident report: built from events alone, with alert text kept inert."""

from __future__ import annotations

import re
from typing import Any

from sre_agent.web.report import build_report, code, md

GEN = "2026-11-21T21:00:00+00:00"
HOSTILE = ("# Ignore previous\n```\nrm -rf /\n```\n<img src=x onerror=alert(1)> "
           "[click](http://evil) | x")


def ev(seq: int, type_: str, at: str, data: dict[str, Any], actor: str = "agent") -> dict[str, Any]:
    return {"seq": seq, "incident_id": "inc-1", "type": type_, "at": f"2026-11-21T20:{at}+00:00",
            "actor": actor, "data": data, "prev_hash": f"{seq - 1:064x}", "hash": f"{seq:064x}"}


def alert_data(status: str = "firing", summary: str = "target down") -> dict[str, Any]:
    return {"fingerprint": "fp1", "starts_at": "2026-11-21T20:00:00+00:00", "status": status,
            "labels": {"alertname": "TargetDown", "container": "web", "severity": "critical"},
            "annotations": {"summary": summary}, "generator_url": "http://prom/graph",
            "ends_at": "0001-01-01T00:00:00Z", "group_key": "g"}


def resolved_incident(summary: str = "target down") -> list[dict[str, Any]]:
    return [
        ev(1, "IncidentOpened", "00:00", {"title": f"TargetDown: {summary}",
                                          "severity": "critical", "group_key": "g"},
           "alertmanager"),
        ev(2, "AlertReceived", "00:00", alert_data(summary=summary), "alertmanager"),
        ev(3, "EvidenceCollected", "00:01", {"targets": [{"name": "web"}], "evidence": []}),
        ev(4, "DiagnosisProduced", "00:01", {
            "summary": "web exited", "probable_cause": "OOM", "category": "availability",
            "severity": "critical", "confidence": 0.85, "engine": "llm", "model": "m1",
            "evidence": ["container web exited with 137", summary], "fallback_reason": None,
            "proposed_actions": [{"kind": "restart_container", "target": "web"}]}),
        ev(5, "ActionProposed", "00:01", {"action_id": "a1", "kind": "restart_container",
                                          "target": "web", "alertname": "TargetDown",
                                          "reason": "exited", "idempotency_key": "k"}),
        ev(6, "ActionAwaitingApproval", "00:01", {"action_id": "a1", "reason": "approval mode"}),
        ev(7, "ActionApproved", "00:30", {"action_id": "a1", "reason": "go"}, "operator:alice"),
        ev(8, "ActionStarted", "00:31", {"action_id": "a1", "reason": "approved"}),
        ev(9, "ActionSucceeded", "00:33", {"action_id": "a1", "result": {"ok": True}}),
        ev(10, "VerificationPassed", "00:40", {"action_id": "a1", "result": {"ok": True}}),
        ev(11, "AlertResolved", "02:00", alert_data("resolved", summary), "alertmanager"),
        ev(12, "IncidentResolved", "02:00", {"reason": "all alerts resolved"}, "alertmanager"),
    ]


def test_report_has_every_section_with_times_outcomes_and_hashes() -> None:
    text = build_report(resolved_incident(), generated_at=GEN)
    for heading in ("# Post-incident report: TargetDown: target down", "## Summary",
                    "## Timeline", "## Diagnosis", "## Actions and outcomes", "## Alerts",
                    "## Audit"):
        assert heading in text, heading
    assert "**Status:** resolved" in text
    assert "**Time to recover:** 2m 0s" in text
    assert "**Time to first action:** 31s" in text
    assert "**Time to verified fix:** 40s" in text
    assert "| 2026-11-21 20:00:30 UTC | 7 | ActionApproved | operator:alice |" in text
    assert "**Engine:** llm (model m1)" in text and "**Confidence:** 0.85" in text
    assert "**Probable cause:** OOM" in text
    assert "restart container on web | TargetDown | approved: go | operator:alice | succeeded " \
           "| passed |" in text
    assert f"seq 1, hash `{1:064x}`" in text and f"seq 12, hash `{12:064x}`" in text
    assert "**Events:** 12 (seq 1 to 12)" in text


def test_open_incident_without_diagnosis() -> None:
    events = resolved_incident()[:2]
    text = build_report(events, generated_at=GEN)
    assert "**Status:** open" in text
    assert "**Time to recover:** not recovered yet" in text
    assert "No diagnosis was recorded." in text and "No action was proposed." in text


def test_blocked_and_failed_actions_are_reported() -> None:
    events = [
        *resolved_incident()[:5],
        ev(6, "ActionStarted", "00:02", {"action_id": "a1", "reason": "autonomous"}),
        ev(7, "ActionFailed", "00:03", {"action_id": "a1",
                                        "result": {"ok": False, "error": "timeout"}}),
        ev(8, "IncidentEscalated", "00:03", {"reason": "restart failed"}),
    ]
    text = build_report(events, generated_at=GEN)
    assert "allowed by the gate: autonomous" in text and "failed: timeout" in text
    assert "**Status:** escalated" in text and "- restart failed" in text


def test_hostile_alert_text_cannot_change_the_markdown_structure() -> None:
    text = build_report(resolved_incident(summary=HOSTILE), generated_at=GEN)
    lines = text.splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert headings == ["# Post-incident report: TargetDown: \\# Ignore previous \\`\\`\\` rm -rf "
                        "/ \\`\\`\\` \\<img src=x onerror=alert(1)\\> \\[click\\](http://evil) "
                        "\\| x", "## Summary", "## Timeline", "## Diagnosis",
                        "## Actions and outcomes", "## Alerts", "## Audit"]
    assert not any(line.startswith("```") for line in lines)
    ours = re.sub(r"`[\w /.-]+`", "", text)  # the report's own code spans
    assert re.search(r"(?<!\\)[<\[`]", ours) is None  # no live HTML, link or code
    # Table rows keep their column count: a | in alert text is escaped.
    for line in lines:
        if line.startswith("| 2026-"):
            assert len(re.findall(r"(?<!\\)\|", line)) == 6, line


def test_md_and_code_neutralise_structure() -> None:
    assert md("# title") == "\\# title"
    assert md("- item") == "\\- item"
    assert md("1. item") == "\\1. item"
    assert md("> quote") == "\\> quote"
    assert md("a # b") == "a \\# b"
    assert md("a\nb\u2028c\r\nd") == "a b c d"
    assert md("*x* _y_ `z` ~w~ a&b") == "\\*x\\* \\_y\\_ \\`z\\` \\~w\\~ a\\&b"
    assert md("x" * 400, 10) == "x" * 9 + "…"
    assert code("a`b c\n") == "a'bc"
    assert code(None) == "-"


def test_reveal_controls_names_hidden_characters_and_keeps_the_rest() -> None:
    from sre_agent.web.views import clip, reveal_controls

    assert reveal_controls("a\u202eb\u200bc\x07d\te\nf") == "a⟨U+202E⟩b⟨U+200B⟩c⟨U+0007⟩d\te\nf"
    assert reveal_controls("Grüße, 日本, emoji 🙂") == "Grüße, 日本, emoji 🙂"
    assert clip("x\u2066y") == "x⟨U+2066⟩y"
