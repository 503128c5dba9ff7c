"""The incident timeline folds long runs of received alerts and keeps everything else."""

from __future__ import annotations

from sre_agent.domain.events import Actor, EventType, NewEvent, StoredEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.web.incident_view import RUN_LIMIT, RUN_SHOWN, timeline


def events(payloads: list[ev.EventPayload]) -> list[StoredEvent]:
    out = []
    for seq, p in enumerate(payloads, 1):
        new = NewEvent.of(p, Actor.ALERTMANAGER, "inc-1")
        out.append(StoredEvent(seq=seq, incident_id="inc-1", type=new.type,
                               at="2026-01-01T00:00:00Z", actor=new.actor, data=new.data,
                               prev_hash="0" * 64, hash=f"{seq:064x}"))
    return out


def alerts(n: int) -> list[ev.EventPayload]:
    return [ev.AlertReceived(fingerprint=f"f{i}", labels={"alertname": "A"}) for i in range(n)]


def test_long_runs_fold_short_runs_stay() -> None:
    log = events([ev.IncidentOpened(title="t"), *alerts(1000),
                  ev.DiagnosisProduced(summary="s"), *alerts(RUN_LIMIT),
                  ev.NoteAdded(text="looked"), *alerts(RUN_LIMIT + 1)])
    rows = timeline(log)
    folded = [r for r in rows if r.folded]
    assert [r.folded for r in folded] == [1000 - RUN_SHOWN, RUN_LIMIT + 1 - RUN_SHOWN]
    assert "995 more alerts received (#7-#1001" in folded[0].text
    # Every other event is there, in order, and nothing is lost from the count.
    assert [r.type for r in rows if r.type != EventType.ALERT_RECEIVED] == [
        "IncidentOpened", "DiagnosisProduced", "NoteAdded"]
    shown = sum(1 for r in rows if r.type == EventType.ALERT_RECEIVED and not r.folded)
    assert shown + sum(r.folded for r in folded) == 1000 + RUN_LIMIT + RUN_LIMIT + 1
    assert len(rows) == 3 + RUN_SHOWN + 1 + RUN_LIMIT + RUN_SHOWN + 1
