"""Typed events: one model per type, and no event-type string literal outside the domain."""

from __future__ import annotations

import ast
from pathlib import Path

from sre_agent.domain.events import PAYLOADS, EventType, NewEvent, StoredEvent, parse_payload
from sre_agent.domain.events import payloads as p

SRC = Path(__file__).resolve().parents[2] / "src" / "sre_agent"
NAMES = {t.value for t in EventType}


def test_every_event_type_has_one_payload_model() -> None:
    assert set(PAYLOADS) == set(EventType)
    assert all(t == cls.TYPE for t, cls in PAYLOADS.items())


def test_no_event_type_string_literal_outside_the_domain() -> None:
    found = []
    for path in SRC.rglob("*.py"):
        if "domain" in path.relative_to(SRC).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Constant) and node.value in NAMES:
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value!r}")
    assert not found, "use EventType or a payload model instead:\n" + "\n".join(found)


def test_the_grep_would_catch_a_literal() -> None:
    tree = ast.parse('if ev.type == "ActionProposed": pass')
    assert any(isinstance(n, ast.Constant) and n.value in NAMES for n in ast.walk(tree))


def test_payload_round_trips_only_what_was_set() -> None:
    new = NewEvent.of(p.ActionBlocked(action_id="a1", reason="paused"), "agent", "inc-1")
    assert new.type == EventType.ACTION_BLOCKED
    assert new.data == {"action_id": "a1", "reason": "paused"}


def test_stored_event_is_typed_and_lenient() -> None:
    ev = StoredEvent.from_dict({"seq": 3, "type": "ActionFailed", "data": {
        "action_id": "a1", "result": {"ok": False, "error": "boom", "extra": 1}}})
    assert ev.type is EventType.ACTION_FAILED
    assert isinstance(ev.payload, p.ActionFailed)
    assert ev.payload.result.error == "boom"
    assert isinstance(parse_payload("SomethingNew", {"x": 1}), p.UnknownPayload)
    assert isinstance(parse_payload(EventType.ACTION_PROPOSED, {"proposal": "not a dict"}),
                      p.UnknownPayload)
