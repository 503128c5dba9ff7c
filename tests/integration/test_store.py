"""The store on both back ends (a SQLite file and a real PostgreSQL 15 database, through the
`store_url` fixture): restarts keep state, tampering is caught, rebuilds agree."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from sre_agent.api.app import create_app
from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.pipeline.stages import IncidentWork
from sre_agent.ports import EventStore
from sre_agent.store.sql import SqlEventStore
from tests.conftest import make_settings
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration


async def _post(settings_path: Path, payload: dict[str, object],
                url: str | None = None) -> dict[str, object]:
    extra = {"database_url": url} if url else {}
    app = create_app(make_settings(settings_path, **extra))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        r = await c.post("/webhook/alertmanager", json=payload)
        assert r.status_code == 200
        return dict(r.json())


async def test_restart_on_same_store_keeps_state(tmp_path: Path, store_url: str) -> None:
    first = await _post(tmp_path, notification(), store_url)
    second = await _post(tmp_path, notification(), store_url)  # a new app, the same store
    assert second["alerts_duplicate"] == 1 and second["incidents"] == first["incidents"]
    third = await _post(tmp_path, notification([alert(status="resolved")]), store_url)
    assert third["incidents"] == first["incidents"]
    store = SqlEventStore(store_url)
    try:
        incident = await store.get_incident(str(first["incidents"][0]))  # type: ignore[index]
        assert incident is not None and incident["status"] == "resolved"
        assert (await store.verify()).ok
    finally:
        await store.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sre_agent", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def _tamper(url: str, statement: str) -> None:
    """Edit the log behind the store's back, as an attacker with database access would."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


async def test_tampering_is_detected_by_cli(tmp_path: Path, store_url: str) -> None:
    await _post(tmp_path, notification([alert(fingerprint=f"f{i}") for i in range(3)]),
                store_url)
    url = store_url
    ok = _cli("audit", "verify", "--database-url", url)
    assert ok.returncode == 0 and "4 events verified" in ok.stdout
    _tamper(url, "UPDATE events SET data = replace(data, 'target', 'TAMPERED') WHERE seq = 3")
    bad = _cli("audit", "verify", "--database-url", url)
    assert bad.returncode == 1
    assert "broken at seq 3" in bad.stderr and "Traceback" not in bad.stderr


async def test_deleted_event_is_detected(tmp_path: Path, store_url: str) -> None:
    await _post(tmp_path, notification([alert(fingerprint=f"f{i}") for i in range(3)]),
                store_url)
    _tamper(store_url, "DELETE FROM events WHERE seq = 4")
    store = SqlEventStore(store_url)
    try:
        result = await store.verify()
        assert not result.ok and result.first_break is not None
        assert result.first_break.seq == 4
    finally:
        await store.close()


async def test_rebuilt_projections_equal_live_ones(store_url: str) -> None:
    store = SqlEventStore(store_url)
    try:
        for i in range(4):
            await store.ingest(WebhookNotification.model_validate(notification(
                [alert(fingerprint=f"a{i}"), alert(fingerprint=f"b{i}")], group_key=f"g{i}")))
        await store.ingest(WebhookNotification.model_validate(notification(
            [alert(fingerprint="a0", status="resolved"), alert(fingerprint="b0",
                                                               status="resolved")],
            group_key="g0")))
        await store.append([NewEvent(EventType.MODE_CHANGED, Actor.operator("x"), None,
                                     {"mode": "observe"})])
        before = (await store.list_incidents(limit=100)).items
        control = await store.control_state()
        count = await store.rebuild_projections()
        assert count == 16
        assert (await store.list_incidents(limit=100)).items == before
        assert await store.control_state() == control
    finally:
        await store.close()


def _projection_rows(store: SqlEventStore) -> dict[str, list[tuple[object, ...]]]:
    """Every row of the incident and alert projections (alerts without their surrogate id)."""
    from sre_agent.store.schema import alerts, incidents

    with store.engine.connect() as conn:
        return {
            "incidents": [tuple(r) for r in conn.execute(
                incidents.select().order_by(incidents.c.opened_seq))],
            "alerts": [tuple(r)[1:] for r in conn.execute(
                alerts.select().order_by(alerts.c.received_seq, alerts.c.fingerprint))],
        }


async def test_batched_projections_equal_one_event_at_a_time(store_url: str) -> None:
    """Appends fold their events in few statements (an incident opened with its alerts is
    inserted with their counts; alerts to an open incident are counted in one UPDATE);
    a rebuild applies the same events one by one. The rows must be the same."""
    store = SqlEventStore(store_url)
    try:
        def send(alerts: list[dict[str, object]], group: str) -> WebhookNotification:
            return WebhookNotification.model_validate(notification(alerts, group_key=group))

        await store.ingest(send([alert(fingerprint="n1")], "g1"))  # opened with 1 alert
        await store.ingest(send([alert(fingerprint=f"m{i}") for i in range(3)], "g2"))
        await store.ingest(send([alert(fingerprint="n2"), alert(fingerprint="n3")], "g1"))
        await store.ingest(send([alert(fingerprint="n1")], "g1"))  # a duplicate
        await store.ingest(send([alert(fingerprint="m0", status="resolved"),
                                 alert(fingerprint="m9")], "g2"))
        await store.ingest(send([alert(fingerprint=f"m{i}", status="resolved")
                                 for i in (1, 2, 9)], "g2"))  # g2 resolved
        await store.ingest(send([alert(fingerprint="r1", status="resolved")], "g3"))
        await store.ingest(send([alert(fingerprint="r1")], "g3"))  # its firing, late
        await store.ingest(send([alert(fingerprint="m5")], "g2"))  # a new incident in g2
        live = _projection_rows(store)
        assert [(r[1], r[2], r[10], r[11]) for r in live["incidents"]] == [
            ("g1", "open", 3, 3), ("g2", "resolved", 4, 0), ("g3", "resolved", 1, 0),
            ("g2", "open", 1, 1)]
        assert len(live["alerts"]) == 9
        await store.rebuild_projections()
        assert _projection_rows(store) == live
    finally:
        await store.close()


async def test_pipeline_appends_merge_incident_updates_as_one_at_a_time_would(
        store_url: str) -> None:
    """A pipeline append's plain changes to an incident (last_seq, diagnosis, status) are
    merged into one UPDATE; an expression (escalated unless resolved) or a read of the row
    (a late recovery, an explanation) writes them first. Rows equal the one-by-one rebuild."""
    from sqlalchemy import select

    from sre_agent.domain.events import payloads as ev
    from sre_agent.store.schema import action_stats, actions

    store = SqlEventStore(store_url)
    try:
        first = await store.ingest(WebhookNotification.model_validate(notification()))
        second = await store.ingest(WebhookNotification.model_validate(
            notification([alert(fingerprint="other")], group_key="g-other")))
        a, b = first.touched[0], second.touched[0]

        def on(incident: str, *items: ev.EventPayload) -> list[NewEvent]:
            return [NewEvent.of(item, Actor.AGENT, incident) for item in items]

        await store.append([
            *on(a, ev.DiagnosisProduced(engine="rules", summary="down", category="availability"),
                ev.ActionProposed(action_id="a1", idempotency_key=f"{a}:r:web:1",
                                  kind="restart_container", target="web",
                                  alertname="TargetDown", reason="down")),
            *on(b, ev.DiagnosisProduced(engine="rules", summary="b", category="unknown"),
                ev.DiagnosisExplained(summary="b explained"),  # reads the pending diagnosis
                ev.IncidentEscalated(reason="nobody knows")),
            *on(a, ev.ActionStarted(action_id="a1"), ev.ActionSucceeded(action_id="a1"))])
        await store.append([
            *on(a, ev.IncidentResolved(reason="fixed"), ev.VerificationPassed(action_id="a1"),
                ev.DiagnosisExplained(summary="it was down")),
            *on(b, ev.IncidentResolved(reason="gone"), ev.IncidentEscalated(reason="late"))])

        def rows() -> dict[str, list[tuple[object, ...]]]:
            out = _projection_rows(store)
            with store.engine.connect() as conn:
                out["actions"] = [tuple(r) for r in conn.execute(select(actions))]
                out["stats"] = [tuple(r) for r in conn.execute(select(action_stats))]
            return out

        live = rows()
        by_id = {r[0]: r for r in live["incidents"]}
        assert by_id[a][2] == "resolved" and by_id[b][2] == "resolved"  # escalation after
        assert by_id[a][12]["summary"] == "it was down"
        assert by_id[b][12]["summary"] == "b explained"
        assert by_id[a][9] == (await store.get_incident(a) or {})["last_seq"]
        assert [r[3] for r in live["stats"]] == [1]  # attempts: one, verified once
        await store.rebuild_projections()
        assert rows() == live
    finally:
        await store.close()


async def test_incident_snapshot_equals_the_separate_reads(store_url: str) -> None:
    store = SqlEventStore(store_url)
    try:
        first = await store.ingest(WebhookNotification.model_validate(notification(
            [alert(fingerprint="s1"), alert(fingerprint="s2")], group_key="snap")))
        other = await store.ingest(WebhookNotification.model_validate(notification(
            [alert(fingerprint="s3")], group_key="other")))
        await store.append([NewEvent(EventType.PAUSED, Actor.operator("x"), None, {})])
        incident_id = first.touched[0]
        snap = await store.incident_snapshot(incident_id)
        assert snap is not None
        assert snap.incident == await store.get_incident(incident_id)
        assert snap.alerts == await store.incident_alerts(incident_id)
        assert [a["fingerprint"] for a in snap.alerts] == ["s1", "s2"]
        assert snap.events == await store.list_events(incident_id=incident_id, limit=1000)
        assert other.touched[0] not in {e.incident_id for e in snap.events}
        assert snap.control == await store.control_state() == {"paused": "true"}
        assert await store.incident_snapshot("inc-none") is None
    finally:
        await store.close()


class RecordingStage:
    name = "record"

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def run(self, work: IncidentWork, store: EventStore) -> None:
        self.seen.append(work.id)


async def test_unprocessed_incidents_resume_after_restart(store_url: str) -> None:
    url = store_url
    store = SqlEventStore(url)
    result = await store.ingest(WebhookNotification.model_validate(notification()))
    await store.close()  # "crash": nothing processed it
    store = SqlEventStore(url)
    stage = RecordingStage()
    runner = PipelineRunner(store, [stage], workers=1)
    try:
        await runner.start()
        await runner.wait_idle(10)
        assert stage.seen == result.touched
        await runner.stop()
        runner2 = PipelineRunner(store, [stage], workers=1)
        await runner2.start()
        await runner2.wait_idle(10)
        await runner2.stop()
        assert stage.seen == result.touched  # processed once, not again
    finally:
        await store.close()


async def test_unwritable_sqlite_store_answers_503_then_recovers(tmp_path: Path) -> None:
    """SQLite: another process holds the write lock (PostgreSQL's outage is in
    test_store_postgres.py: the server stopped under load)."""
    settings = make_settings(tmp_path)
    app = create_app(settings)
    db = tmp_path / "agent.db"
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        assert (await c.post("/webhook/alertmanager", json=notification())).status_code == 200
        locker = sqlite3.connect(db, timeout=0)
        locker.execute("BEGIN EXCLUSIVE")  # another writer holds the lock: writes cannot land
        store = app.state.services.store
        store.engine.dispose()
        # Short busy timeout so the test does not wait 30 s.
        from sqlalchemy import event as sa_event

        @sa_event.listens_for(store.engine, "connect")
        def _short(dbapi_conn, _rec):  # type: ignore[no-untyped-def]
            dbapi_conn.execute("PRAGMA busy_timeout=200")

        r = await c.post("/webhook/alertmanager", json=notification([alert(fingerprint="n")]))
        assert r.status_code == 503 and r.headers["retry-after"]
        assert (await c.get("/ready")).status_code == 503
        locker.rollback()
        locker.close()
        r = await c.post("/webhook/alertmanager", json=notification([alert(fingerprint="n")]))
        assert r.status_code == 200 and r.json()["alerts_new"] == 1
        assert (await c.get("/ready")).status_code == 200


class FlakyStage:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.runs = 0

    async def run(self, work: IncidentWork, store: EventStore) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            raise RuntimeError("store briefly unavailable")


async def test_failed_runs_are_retried_with_backoff(store_url: str) -> None:
    import asyncio

    store = SqlEventStore(store_url)
    stage = FlakyStage(failures=2)
    runner = PipelineRunner(store, [stage], workers=1, retry_base_s=0.05, retry_max_s=0.1)
    try:
        await runner.start()
        result = await store.ingest(WebhookNotification.model_validate(notification()))
        runner.submit(result.touched[0])
        for _ in range(100):
            if stage.runs >= 3 and not await store.pending_incidents():
                break
            await asyncio.sleep(0.05)
        assert stage.runs == 3  # two failures, then success; nothing after that
        assert await store.pending_incidents() == []
    finally:
        await runner.stop()
        await store.close()


async def test_track_record_counts_only_finished_attempts(store_url: str) -> None:
    """An action still being verified is neither a success nor a failure yet."""
    store = SqlEventStore(store_url)
    try:
        result = await store.ingest(WebhookNotification.model_validate(notification()))
        inc = result.touched[0]

        def proposed(aid: str) -> NewEvent:
            return NewEvent(EventType.ACTION_PROPOSED, Actor.AGENT, inc, {
                "action_id": aid, "idempotency_key": f"{inc}:{aid}", "kind": "restart_container",
                "target": "web", "reason": "r", "alertname": "TargetDown", "proposal": {}})

        await store.append([proposed("a1"), proposed("a2"), proposed("a3"),
                            NewEvent(EventType.ACTION_STARTED, Actor.AGENT, inc,
                                     {"action_id": "a1"}),
                            NewEvent(EventType.ACTION_STARTED, Actor.AGENT, inc,
                                     {"action_id": "a2"}),
                            NewEvent(EventType.ACTION_STARTED, Actor.AGENT, inc,
                                     {"action_id": "a3"})])
        assert await store.action_stats() == []  # three in flight: no verdict yet
        await store.append([
            NewEvent(EventType.ACTION_SUCCEEDED, Actor.AGENT, inc, {"action_id": "a1"}),
            NewEvent(EventType.VERIFICATION_PASSED, Actor.AGENT, inc, {"action_id": "a1"}),
            NewEvent(EventType.ACTION_FAILED, Actor.AGENT, inc, {"action_id": "a2"})])
        [row] = await store.action_stats()
        assert (row["attempts"], row["successes"]) == (2, 1)
    finally:
        await store.close()


async def test_concurrent_operator_commands_on_two_stores_append_once(store_url: str) -> None:
    """Operators acknowledging and resolving one incident at once, through two stores on one
    database (two replicas): one IncidentAcknowledged and one IncidentResolved, the other
    commands refused with 409s, never a second event decided on a stale read."""
    from sre_agent.domain.incident import Mode
    from sre_agent.domain.policy import Policy
    from sre_agent.pipeline.commands import Acknowledge, CommandBus, Conflict, ResolveIncident
    from sre_agent.pipeline.incident_commands import IncidentCommand

    stores = [SqlEventStore(store_url), SqlEventStore(store_url)]
    try:
        result = await stores[0].ingest(WebhookNotification.model_validate(notification()))
        incident = result.touched[0]
        buses = [CommandBus(s, Policy(), default_mode=Mode.APPROVAL, submit=lambda _: None)
                 for s in stores]
        for make in (lambda who: Acknowledge(incident, who),
                     lambda who: ResolveIncident(incident, who)):
            commands: list[IncidentCommand] = [make(Actor.operator(f"op{i}")) for i in range(8)]
            outcomes = await asyncio.gather(
                *(buses[i % 2].handle(cmd) for i, cmd in enumerate(commands)),
                return_exceptions=True)
            done = [o for o in outcomes if not isinstance(o, BaseException)]
            refused = [o for o in outcomes if isinstance(o, Conflict)]
            assert len(done) == 1 and len(refused) == 7, outcomes
        events = await stores[1].list_events(incident_id=incident, limit=1000)
        types = [e.type for e in events]
        assert types.count(EventType.INCIDENT_ACKNOWLEDGED) == 1
        assert types.count(EventType.INCIDENT_RESOLVED) == 1
        assert (await stores[1].verify()).ok
    finally:
        for s in stores:
            await s.close()


async def test_pipeline_store_calls_wait_while_a_webhook_is_in_flight(tmp_path: Path) -> None:
    """Ingest first: a read and a write made from background work (a pipeline worker) wait
    for the webhook in flight; the same calls from anything else go straight through."""
    from sre_agent.ingest_first import IngestFirst, run_in_background

    store = SqlEventStore(f"sqlite:///{tmp_path / 'gate.db'}")
    gate = IngestFirst(max_defer_s=5.0)
    try:
        await store.list_replicas()  # warm: schema created
        gate.enter()
        done: list[str] = []

        async def pipeline_work() -> None:
            run_in_background(gate)
            await store.list_replicas()
            done.append("read")
            await store.forget_replica("nobody")
            done.append("write")

        work = asyncio.create_task(pipeline_work())
        await store.list_replicas()  # foreground: straight through
        await store.forget_replica("nobody")
        await asyncio.sleep(0.3)
        assert done == []  # held back while the webhook is in flight
        gate.leave()
        await asyncio.wait_for(work, 5)
        assert done == ["read", "write"] and gate.deferred_s >= 0.3

        gate.enter()  # now the write alone, behind a webhook in flight

        async def pipeline_write() -> None:
            run_in_background(gate)
            await store.forget_replica("nobody")

        write = asyncio.create_task(pipeline_write())
        await asyncio.sleep(0.2)
        assert not write.done()
        gate.leave()
        await asyncio.wait_for(write, 5)
    finally:
        await store.close()
