"""AlertmanagerSilenceBackend against a real Alertmanager 0.25 binary."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from sre_agent.actions.silence import AlertmanagerSilenceBackend, clamp_duration, key_marker
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.results import ActionRequest, ReconcileStatus
from sre_agent.ports import ActionBackend
from tests.support.alertmanager import (
    AlertmanagerProcess,
    list_alerts,
    list_silences,
    post_alerts,
    running_alertmanager,
)
from tests.support.components import free_port

TOOK, NO_EFFECT, UNKNOWN = (ReconcileStatus.TOOK_EFFECT, ReconcileStatus.NO_EFFECT,
                            ReconcileStatus.UNKNOWN)

pytestmark = pytest.mark.integration

LABELS = {"alertname": "TargetDown", "instance": "127.0.0.1:28080", "job": "target",
          "severity": "critical"}


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AlertmanagerProcess]:
    with running_alertmanager(tmp_path_factory.mktemp("am")) as am:
        yield am


def request(key: str, labels: dict[str, str] | None = None, **params: object) -> ActionRequest:
    return ActionRequest(action_id=f"act-{key}", idempotency_key=key, incident_id="inc-42",
                         kind=ActionKind.SILENCE_ALERT, reason="known maintenance, token=abc123",
                         params=dict(params), labels=LABELS if labels is None else labels)


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


def test_backend_satisfies_the_protocol() -> None:
    backend: ActionBackend = AlertmanagerSilenceBackend("http://127.0.0.1:9")
    assert backend.kinds == {ActionKind.SILENCE_ALERT}


async def test_create_silence_is_listed_and_reconciled(alertmanager: AlertmanagerProcess) -> None:
    backend = AlertmanagerSilenceBackend(alertmanager.url + "/", created_by="sre-agent-test")
    req = request("key-create", duration_s=600)
    began = datetime.now(UTC)
    assert (await backend.reconcile(req, began)).status is NO_EFFECT

    result = await backend.execute(req)

    assert result.ok, result
    silence_id = result.detail["silence_id"]
    assert silence_id
    print(f"\n[measure] silence creation: {result.duration_ms:.1f} ms")

    listed = {s["id"]: s for s in list_silences(alertmanager.url)}
    assert silence_id in listed
    silence = listed[silence_id]
    assert silence["status"]["state"] == "active"
    assert silence["createdBy"] == "sre-agent-test"
    assert "inc-42" in silence["comment"] and "known maintenance" in silence["comment"]
    assert key_marker("key-create") in silence["comment"]
    assert "abc123" not in silence["comment"]  # the reason is redacted
    matchers = {m["name"]: m for m in silence["matchers"]}
    assert set(matchers) == set(LABELS)
    for name, value in LABELS.items():
        assert matchers[name]["value"] == value
        assert matchers[name]["isRegex"] is False and matchers[name]["isEqual"] is True
    duration = parse(silence["endsAt"]) - parse(silence["startsAt"])
    assert abs(duration.total_seconds() - 600) < 2

    assert (await backend.reconcile(req, began)).status is TOOK
    assert (await backend.reconcile(request("key-other"), began)).status is NO_EFFECT


async def test_silence_mutes_the_matching_alert(alertmanager: AlertmanagerProcess) -> None:
    labels = {**LABELS, "alertname": "SilenceMe"}
    post_alerts(alertmanager.url, [{"labels": labels, "annotations": {"summary": "x"}}])
    post_alerts(alertmanager.url, [{"labels": {**labels, "instance": "other:1"}}])
    backend = AlertmanagerSilenceBackend(alertmanager.url)

    result = await backend.execute(request("key-mute", labels=labels))
    assert result.ok, result

    deadline = time.monotonic() + 10
    while True:
        alerts = {a["labels"]["instance"]: a for a in list_alerts(alertmanager.url)
                  if a["labels"]["alertname"] == "SilenceMe"}
        muted = alerts.get(labels["instance"], {}).get("status", {})
        if muted.get("state") == "suppressed" or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    assert muted.get("state") == "suppressed", alerts
    assert result.detail["silence_id"] in muted["silencedBy"]
    # Only the incident's own labels are silenced, not its neighbours.
    assert alerts["other:1"]["status"]["state"] == "active"


@pytest.mark.parametrize(("given", "expected"), [
    (None, 3600), (30, 60), (10**9, 86400), ("900", 900), (1200.7, 1200), ("soon", 3600),
    (True, 3600), (float("nan"), 3600),
])
def test_duration_is_clamped(given: object, expected: int) -> None:
    assert clamp_duration(given, 3600) == expected


async def test_duration_param_is_clamped_in_alertmanager(
        alertmanager: AlertmanagerProcess) -> None:
    backend = AlertmanagerSilenceBackend(alertmanager.url, default_duration_s=120)
    short = await backend.execute(request("key-short", duration_s=1))
    default = await backend.execute(request("key-default"))
    assert short.ok and default.ok, (short, default)
    listed = {s["id"]: s for s in list_silences(alertmanager.url)}
    for result, seconds in ((short, 60), (default, 120)):
        s = listed[result.detail["silence_id"]]
        length = (parse(s["endsAt"]) - parse(s["startsAt"])).total_seconds()
        assert abs(length - seconds) < 2


async def test_no_labels_refuses_to_silence_everything(alertmanager: AlertmanagerProcess) -> None:
    backend = AlertmanagerSilenceBackend(alertmanager.url)
    before = len(list_silences(alertmanager.url))
    result = await backend.execute(request("key-empty", labels={"alertname": ""}))
    assert not result.ok
    assert result.error is not None and "no alert labels" in result.error
    assert len(list_silences(alertmanager.url)) == before


async def test_rejected_silence_reports_status_and_body(
        alertmanager: AlertmanagerProcess) -> None:
    backend = AlertmanagerSilenceBackend(alertmanager.url)
    result = await backend.execute(request("key-bad", labels={"bad label!": "x"}))
    assert not result.ok
    assert result.detail["status_code"] == 400
    assert result.error is not None and result.error.startswith("alertmanager answered 400: ")
    assert len(result.error) < 400


async def test_alertmanager_down_is_a_clean_failure() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    backend = AlertmanagerSilenceBackend(url, timeout_s=2)
    t0 = time.monotonic()
    result = await backend.execute(request("key-down"))
    elapsed = time.monotonic() - t0
    assert not result.ok
    assert result.error is not None and result.error.startswith("alertmanager unreachable: ")
    assert "Traceback" not in result.error
    assert elapsed < 3
    assert (await backend.reconcile(request("key-down"), datetime.now(UTC))).status is UNKNOWN


async def test_unresponsive_alertmanager_times_out() -> None:
    import socket

    # A listener that accepts connections but never answers.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        url = f"http://127.0.0.1:{server.getsockname()[1]}"
        backend = AlertmanagerSilenceBackend(url, timeout_s=1)
        t0 = time.monotonic()
        result = await backend.execute(request("key-hang"))
        elapsed = time.monotonic() - t0
        assert not result.ok
        assert result.error == "alertmanager timed out after 1s"
        assert elapsed < 2.5
        assert (await backend.reconcile(request("key-hang"),
                                       datetime.now(UTC) - timedelta(minutes=1))).status is UNKNOWN


async def test_unsupported_kind_is_refused() -> None:
    backend = AlertmanagerSilenceBackend("http://127.0.0.1:9")
    req = request("k").model_copy(update={"kind": ActionKind.NOTIFY})
    result = await backend.execute(req)
    assert not result.ok and result.error == "unsupported action kind notify"
