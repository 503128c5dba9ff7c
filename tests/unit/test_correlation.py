"""Correlation as a pure function: one incident per groupKey while firing, repeats add nothing."""

from __future__ import annotations

import itertools

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.events import EventType
from sre_agent.domain.incident import CorrelationSnapshot, KnownAlert, correlate
from tests.support.payloads import alert, notification

_ids = itertools.count(1)


def new_id() -> str:
    return f"inc-{next(_ids)}"


def parse(payload: dict[str, object]) -> WebhookNotification:
    return WebhookNotification.model_validate(payload)


def apply(snap: CorrelationSnapshot, n: WebhookNotification) -> list[str]:
    """Run correlation and fold its result into the snapshot, as the store would."""
    result = correlate(n, snap, new_id)
    for ev in result.events:
        if ev.type == EventType.INCIDENT_RESOLVED and snap.open_incident_id == ev.incident_id:
            snap.open_incident_id = None
        if ev.type == EventType.INCIDENT_OPENED:
            snap.open_incident_id = ev.incident_id
    return [str(e.type) for e in result.events]


def test_first_firing_opens_incident_and_records_alert() -> None:
    snap = CorrelationSnapshot(open_incident_id=None)
    result = correlate(parse(notification()), snap, new_id)
    assert [e.type for e in result.events] == [EventType.INCIDENT_OPENED,
                                               EventType.ALERT_RECEIVED]
    assert result.new_alerts == 1 and result.duplicates == 0
    opened = result.events[0]
    assert opened.data["severity"] == "critical"
    assert opened.data["title"] == "TargetDown: target down"


def test_redelivery_adds_nothing() -> None:
    snap = CorrelationSnapshot(open_incident_id=None)
    n = parse(notification())
    apply(snap, n)
    again = correlate(n, snap, new_id)
    assert again.events == [] and again.duplicates == 1 and again.touched == []


def test_second_alert_in_group_joins_open_incident() -> None:
    snap = CorrelationSnapshot(open_incident_id=None)
    apply(snap, parse(notification()))
    first_id = snap.open_incident_id
    second = correlate(parse(notification([alert(fingerprint="other")])), snap, new_id)
    assert [e.type for e in second.events] == [EventType.ALERT_RECEIVED]
    assert second.events[0].incident_id == first_id


def test_incident_resolves_only_when_all_alerts_resolved() -> None:
    snap = CorrelationSnapshot(open_incident_id=None)
    apply(snap, parse(notification([alert(fingerprint="a"), alert(fingerprint="b")])))
    one = apply(snap, parse(notification([alert(fingerprint="a", status="resolved")])))
    assert one == ["AlertResolved"]
    both = apply(snap, parse(notification([alert(fingerprint="b", status="resolved")])))
    assert both == ["AlertResolved", "IncidentResolved"]
    assert snap.open_incident_id is None


def test_firing_after_resolution_opens_new_incident() -> None:
    snap = CorrelationSnapshot(open_incident_id=None)
    apply(snap, parse(notification()))
    first = snap.open_incident_id
    apply(snap, parse(notification([alert(status="resolved")])))
    types = apply(snap, parse(notification([alert(starts_at="2026-11-21T21:00:00Z")])))
    assert types == ["IncidentOpened", "AlertReceived"]
    assert snap.open_incident_id not in (None, first)


def test_stale_firing_after_resolution_is_a_duplicate() -> None:
    snap = CorrelationSnapshot(open_incident_id=None)
    apply(snap, parse(notification()))
    apply(snap, parse(notification([alert(status="resolved")])))
    stale = correlate(parse(notification()), snap, new_id)
    assert stale.events == [] and stale.duplicates == 1


def test_resolved_alert_never_seen_firing_is_recorded_and_closes() -> None:
    snap = CorrelationSnapshot(open_incident_id=None)
    types = apply(snap, parse(notification([alert(status="resolved")])))
    assert types == ["IncidentOpened", "AlertResolved", "IncidentResolved"]


def test_known_alert_resolves_in_its_own_incident() -> None:
    snap = CorrelationSnapshot(open_incident_id="inc-new")
    key = ("fp", "2026-11-21T20:21:48.119000+00:00")
    snap.alerts[key] = KnownAlert("inc-old", "firing")
    snap.incident_alerts["inc-old"] = {key: "firing"}
    result = correlate(parse(notification([alert(fingerprint="fp", status="resolved")])),
                       snap, new_id)
    assert {e.incident_id for e in result.events} == {"inc-old"}
    assert [e.type for e in result.events][-1] == EventType.INCIDENT_RESOLVED


def test_starts_at_is_normalised_across_timezones() -> None:
    a = parse(notification([alert(starts_at="2026-11-21T20:21:48.119Z")])).alerts[0]
    b = parse(notification([alert(starts_at="2026-11-21T21:21:48.119+01:00")])).alerts[0]
    assert a.starts_at_key == b.starts_at_key


def test_duplicates_name_the_incident_they_belong_to() -> None:
    snap = CorrelationSnapshot(open_incident_id=None)
    first = correlate(parse(notification()), snap, new_id)
    (incident,) = first.touched
    again = correlate(parse(notification()), snap, new_id)
    assert again.touched == [] and again.duplicates == 1 and again.duplicate_of == [incident]


def test_a_firing_received_after_its_resolution_is_late_not_a_duplicate() -> None:
    snap = CorrelationSnapshot(open_incident_id=None)
    first = correlate(parse(notification([alert(status="resolved")])), snap, new_id)
    (incident,) = first.touched
    assert EventType.INCIDENT_RESOLVED in [e.type for e in first.events]
    snap.open_incident_id = None  # resolved: the store's snapshot has no open incident
    late = correlate(parse(notification()), snap, new_id)
    assert (late.late, late.duplicates, late.new_alerts) == (1, 0, 0)
    assert [e.type for e in late.events] == [EventType.ALERT_RECEIVED_LATE]
    assert late.events[0].incident_id == incident and late.touched == []  # reopens nothing
    again = correlate(parse(notification()), snap, new_id)  # its redelivery: a duplicate
    assert (again.late, again.duplicates) == (0, 1) and again.events == []
