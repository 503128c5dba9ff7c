"""The hash chain detects changed, removed and reordered records."""

from __future__ import annotations

import json
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from sre_agent.domain.events import (
    GENESIS_HASH,
    StoredEvent,
    canonical_json,
    event_hash,
    event_hash_from_text,
    verify_chain,
)


def chain(n: int) -> list[StoredEvent]:
    events, prev = [], GENESIS_HASH
    for seq in range(1, n + 1):
        data = {"n": seq, "text": "é ünïcode"}
        h = event_hash(seq=seq, incident_id="inc-1", type="AlertReceived", at="t", actor="agent",
                       data=data, prev_hash=prev)
        events.append(StoredEvent(seq, "inc-1", "AlertReceived", "t", "agent", data, prev, h))
        prev = h
    return events


def test_intact_chain_verifies() -> None:
    assert verify_chain(chain(5), GENESIS_HASH, 1) is None


def test_changed_data_is_detected_at_its_seq() -> None:
    events = chain(5)
    events[2] = replace(events[2], data={"n": 99})
    brk = verify_chain(events, GENESIS_HASH, 1)
    assert brk is not None and brk.seq == 3 and "content" in brk.reason


def test_changed_actor_is_detected() -> None:
    events = chain(3)
    events[1] = replace(events[1], actor="operator:mallory")
    brk = verify_chain(events, GENESIS_HASH, 1)
    assert brk is not None and brk.seq == 2


def test_removed_record_is_detected() -> None:
    events = chain(5)
    del events[1]
    brk = verify_chain(events, GENESIS_HASH, 1)
    assert brk is not None and brk.seq == 2


def test_rehashed_record_still_breaks_the_next_link() -> None:
    events = chain(4)
    e = events[1]
    data = {"n": 1000}
    forged = replace(e, data=data, hash=event_hash(seq=e.seq, incident_id=e.incident_id,
                                                   type=e.type, at=e.at, actor=e.actor, data=data,
                                                   prev_hash=e.prev_hash))
    events[1] = forged
    brk = verify_chain(events, GENESIS_HASH, 1)
    assert brk is not None and brk.seq == 3


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None)
@given(data=st.dictionaries(st.text(), json_values, max_size=6), actor=st.text(),
       incident=st.one_of(st.none(), st.text()), seq=st.integers(1, 2**62))
def test_hash_from_text_equals_hash_from_data(data: dict[str, object], actor: str,
                                              incident: str | None, seq: int) -> None:
    text = canonical_json(data)
    kw = {"seq": seq, "incident_id": incident, "type": "AlertReceived", "at": "t",
          "actor": actor, "prev_hash": GENESIS_HASH}
    assert event_hash_from_text(**kw, data_text=text) == event_hash(**kw, data=data)


def stored_rows(events: list[StoredEvent]) -> list[StoredEvent]:
    """The same records as the store holds them: data as its canonical JSON text."""
    return [replace(e, data=canonical_json(e.data)) for e in events]  # type: ignore[arg-type]


def test_stored_text_records_verify_without_decoding() -> None:
    assert verify_chain(stored_rows(chain(5)), GENESIS_HASH, 1) is None


def test_changed_stored_text_is_detected_at_its_seq() -> None:
    rows = stored_rows(chain(5))
    rows[2] = replace(rows[2], data=rows[2].data.replace('"n":3', '"n":4'))  # type: ignore[attr-defined]
    brk = verify_chain(rows, GENESIS_HASH, 1)
    assert brk is not None and brk.seq == 3 and "content" in brk.reason


def test_text_that_is_not_json_is_a_break_not_a_crash() -> None:
    rows = stored_rows(chain(3))
    rows[1] = replace(rows[1], data="{not json")  # type: ignore[arg-type]
    brk = verify_chain(rows, GENESIS_HASH, 1)
    assert brk is not None and brk.seq == 2


def test_reformatted_but_equal_text_still_verifies() -> None:
    """Text written in another JSON layout (same content) is judged on its content, as when
    every record was decoded first."""
    rows = stored_rows(chain(3))
    rows[1] = replace(rows[1], data=json.dumps(chain(3)[1].data, indent=2))  # type: ignore[arg-type]
    assert verify_chain(rows, GENESIS_HASH, 1) is None
