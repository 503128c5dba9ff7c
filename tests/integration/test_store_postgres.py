"""The store on both back ends (SQLite file, real PostgreSQL 15): versioned migrations, the
chain under concurrent writers, and text PostgreSQL refuses that SQLite takes."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select, text

from sre_agent.domain.alertmanager import WebhookNotification
from sre_agent.domain.events import Actor, EventType, NewEvent
from sre_agent.store import migrations
from sre_agent.store.schema import metadata
from sre_agent.store.sql import SqlEventStore
from sre_agent.store.sql_writer import Combined
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sre_agent", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_schema_fingerprint_is_recorded_with_its_migration() -> None:
    """schema.py changed without a migration step? Add one (store/migrations.py)."""
    assert migrations.schema_fingerprint() == migrations.SCHEMA_FINGERPRINT, (
        "schema.py changed: add a Migration step and update SCHEMA_FINGERPRINT")


async def test_upgrade_creates_every_table_and_records_the_version(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        every = [m.version for m in migrations.MIGRATIONS]
        assert migrations.upgrade(engine) == every
        assert migrations.upgrade(engine) == []  # idempotent: nothing left to do
        names = set(inspect(engine).get_table_names())
        assert set(metadata.tables) | {"schema_version"} <= names
        with engine.connect() as conn:
            assert migrations.current_version(conn) == migrations.LATEST
    finally:
        engine.dispose()


async def test_a_database_made_before_versioning_is_recorded_not_recreated(
        store_url: str) -> None:
    store = SqlEventStore(store_url)
    await store.ingest(WebhookNotification.model_validate(notification()))
    await store.close()
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:  # as a database of version 1, before versioning
            conn.execute(text("DROP TABLE schema_version"))
            conn.execute(text("DROP TABLE leases"))
        later = [m.version for m in migrations.MIGRATIONS if m.version > 1]
        assert migrations.upgrade(engine) == later  # version 1 recorded, the rest applied
        with engine.connect() as conn:
            assert migrations.current_version(conn) == migrations.LATEST
            assert conn.execute(text("SELECT count(*) FROM events")).scalar() == 2
            assert conn.execute(text("SELECT count(*) FROM leases")).scalar() == 0
    finally:
        engine.dispose()


async def test_a_newer_schema_is_refused(store_url: str) -> None:
    engine = create_engine(store_url)
    try:
        migrations.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(migrations.schema_version.insert().values(
                version=migrations.LATEST + 1, description="from the future", applied_at="x"))
        with pytest.raises(migrations.SchemaTooNew, match="newer agent"):
            migrations.upgrade(engine)
    finally:
        engine.dispose()
    result = _cli("db", "upgrade", "--database-url", store_url)
    assert result.returncode == 1 and "newer agent" in result.stderr
    assert "Traceback" not in result.stderr


def test_db_upgrade_and_status_commands(store_url: str) -> None:
    first = _cli("db", "status", "--database-url", store_url)
    assert first.returncode == 0 and "version 0" in first.stdout, first.stderr
    up = _cli("db", "upgrade", "--database-url", store_url)
    assert up.returncode == 0 and f"upgraded to version {migrations.LATEST}" in up.stdout
    again = _cli("db", "upgrade", "--database-url", store_url)
    assert again.returncode == 0 and "already at version" in again.stdout
    status = _cli("db", "status", "--database-url", store_url)
    assert f"version {migrations.LATEST}" in status.stdout and "up to date" in status.stdout


async def test_concurrent_stores_keep_one_linear_chain(store_url: str) -> None:
    """Several writers (as replicas are) on one database: every append lands once, in one
    chain, and `audit verify` passes. On SQLite the file lock serialises them; on PostgreSQL
    the chain head row is locked FOR UPDATE."""
    stores = [SqlEventStore(store_url) for _ in range(3)]
    try:
        async def writer(store: SqlEventStore, n: int) -> None:
            for i in range(20):
                await store.append([NewEvent(EventType.MODE_CHANGED, Actor.operator(f"w{n}"),
                                             None, {"mode": "observe", "i": i})])
        await asyncio.gather(*(writer(s, n) for n, s in enumerate(stores)))
        result = await stores[0].verify()
        assert result.ok and result.checked == 60
    finally:
        for s in stores:
            await s.close()


async def test_concurrent_upgrades_from_several_replicas_run_once(pg_cluster: Any) -> None:
    """Replicas share PostgreSQL (SQLite serves one process): the advisory lock lets one
    upgrade and the others find nothing to do."""
    store_url = pg_cluster.create_database()
    engines = [create_engine(store_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(asyncio.to_thread(migrations.upgrade, e)
                                         for e in engines))
        assert sorted(len(r) for r in results) == [0, 0, 0, migrations.LATEST]
        with engines[0].connect() as conn:
            rows = conn.execute(select(migrations.schema_version.c.version)).all()
        assert [r.version for r in rows] == [m.version for m in migrations.MIGRATIONS]
    finally:
        for e in engines:
            e.dispose()


async def test_nul_and_odd_text_is_stored_and_read_back(store_url: str) -> None:
    """PostgreSQL text cannot hold NUL; alert text may. Nothing acknowledged is lost."""
    store = SqlEventStore(store_url)
    try:
        odd = alert(name="Odd\x00Name", fingerprint="nul0000000000001",
                    labels={"job": "a\x00b", "emoji": "🙂", "rtl": "\u202e"},
                    annotations={"summary": "nul \x00 here", "description": "\ud7ff"})
        result = await store.ingest(WebhookNotification.model_validate(notification([odd])))
        assert result.new_alerts == 1
        (incident,) = result.touched
        [row] = await store.incident_alerts(incident)
        assert row["labels"]["emoji"] == "🙂" and row["labels"]["rtl"] == "\u202e"
        events = await store.list_events(incident_id=incident)
        received = next(e for e in events if e.type == EventType.ALERT_RECEIVED)
        assert received.data["labels"]["job"] == "a\x00b"  # the log keeps the exact text
        assert (await store.verify()).ok
    finally:
        await store.close()


async def test_the_agent_on_postgresql_answers_503_while_it_is_down_and_loses_nothing(
        pg_cluster: Any, tmp_path: Any) -> None:
    """The whole app on PostgreSQL: ingest, analysis, audit; then the server stops under load:
    webhooks answer 503 (Alertmanager retries those), and after it is back every acknowledged
    alert is there and the pipeline finishes by itself."""
    import httpx

    from sre_agent.api.app import create_app
    from tests.conftest import make_settings

    url = pg_cluster.create_database()
    app = create_app(make_settings(tmp_path, database_url=url, resume_sweep_s=1.0))
    acked: list[str] = []
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
        async def send(i: int) -> int:
            payload = notification([alert(fingerprint=f"pg{i:04d}")], group_key=f"{{}}:g{i}")
            r = await c.post("/webhook/alertmanager", json=payload)
            if r.status_code == 200:
                acked.append(f"pg{i:04d}")
            return r.status_code

        assert {await send(i) for i in range(10)} == {200}
        assert (await c.get("/ready")).status_code == 200
        pg_cluster.stop("fast")
        try:
            codes = [await send(i) for i in range(10, 15)]
            assert set(codes) == {503}, codes
            assert (await c.get("/ready")).status_code == 503
        finally:
            pg_cluster.start()
        for _ in range(100):  # the pool reconnects on its own (dead connections are replaced)
            if await send(15) == 200:
                break
            await asyncio.sleep(0.2)
        assert acked[-1] == "pg0015"
        store = app.state.services.store
        for _ in range(300):  # runs that failed during the outage resume by themselves
            if not await store.pending_incidents():
                break
            await asyncio.sleep(0.2)
        await app.state.services.runner.wait_idle(60)
        body = (await c.get("/audit", params={"type": "AlertReceived", "limit": 1000})).json()
        stored = {e["data"]["fingerprint"] for e in body["items"]}
        assert set(acked) <= stored and len(stored) == len(acked) == 11
        diagnosed = (await c.get("/audit", params={"type": "DiagnosisProduced",
                                                   "limit": 1000})).json()["items"]
        assert len({e["incident_id"] for e in diagnosed}) == 11  # every incident analysed once
        assert (await c.get("/audit/verify")).json()["ok"] is True


@pytest.mark.parametrize("resolved_first", [False, True])
async def test_time_to_recover_does_not_depend_on_which_lands_first(
        store_url: str, resolved_first: bool) -> None:
    """`resolved` may arrive before VerificationPassed (the stability window is longer than
    Alertmanager's group interval): the recovery is counted either way, once."""
    from sre_agent.domain.events import payloads as ev

    store = SqlEventStore(store_url)
    try:
        result = await store.ingest(WebhookNotification.model_validate(notification()))
        inc = result.touched[0]
        await store.append([
            NewEvent.of(ev.ActionProposed(action_id="a1", idempotency_key=f"{inc}:r:web:1",
                                          kind="restart_container", target="web",
                                          alertname="TargetDown", reason="down"),
                        Actor.AGENT, inc),
            NewEvent.of(ev.ActionStarted(action_id="a1"), Actor.AGENT, inc),
            NewEvent.of(ev.ActionSucceeded(action_id="a1"), Actor.AGENT, inc)])
        verified = NewEvent.of(ev.VerificationPassed(action_id="a1"), Actor.AGENT, inc)
        resolved = WebhookNotification.model_validate(notification([alert(status="resolved")]))
        if resolved_first:
            await store.ingest(resolved)
            await store.append([verified])
        else:
            await store.append([verified])
            await store.ingest(resolved)
        [stats] = await store.action_stats()
        assert (stats["attempts"], stats["successes"], stats["recoveries"]) == (1, 1, 1)
        count = await store.rebuild_projections()  # the rebuild agrees with the live fold
        assert count > 0
        [rebuilt] = await store.action_stats()
        assert rebuilt["recoveries"] == 1
    finally:
        await store.close()


async def test_alert_pages_and_event_counts(store_url: str) -> None:
    """The reads behind a paged incident: alerts in the order received, by offset/limit."""
    store = SqlEventStore(store_url)
    try:
        many = [alert(fingerprint=f"{i:016x}", labels={"instance": f"h{i}:9100"})
                for i in range(25)]
        result = await store.ingest(WebhookNotification.model_validate(notification(many)))
        (incident,) = result.touched
        every = await store.incident_alerts(incident)
        page = await store.incident_alerts(incident, offset=10, limit=10)
        assert [a["labels"]["instance"] for a in page] == [f"h{i}:9100" for i in range(10, 20)]
        assert page == every[10:20]
        assert len(await store.incident_alerts(incident, offset=20, limit=10)) == 5
        assert await store.incident_alerts(incident, offset=30) == []
        assert await store.count_events(incident) == 26  # IncidentOpened + 25 AlertReceived
        assert await store.count_events("inc-none") == 0
    finally:
        await store.close()


async def test_one_owner_per_incident_lease_and_takeover_after_the_ttl(
        store_url: str) -> None:
    a, b = SqlEventStore(store_url), SqlEventStore(store_url)
    try:
        now = 1_800_000_000.0
        wins = await asyncio.gather(*(s.claim("inc-1", owner, 10, now)
                                      for s, owner in ((a, "A"), (b, "B"))))
        assert sorted(wins) == [False, True]  # claimed at once: exactly one wins
        holder = "A" if wins[0] else "B"
        other, other_store = ("B", b) if holder == "A" else ("A", a)
        assert not await other_store.claim("inc-1", other, 10, now + 5)
        await (a if holder == "A" else b).renew(["inc-1"], holder, 10, now + 8)
        assert not await other_store.claim("inc-1", other, 10, now + 15)  # renewed to +18
        assert await other_store.claim("inc-1", other, 10, now + 19)  # ran out: taken over
        [lease] = await a.list_leases(now + 19)
        assert lease["owner"] == other
        await (a if holder == "A" else b).release("inc-1", holder)  # not its lease any more
        assert len(await a.list_leases(now + 19)) == 1
        await other_store.release("inc-1", other)
        assert await a.list_leases(now + 19) == []
    finally:
        await a.close()
        await b.close()



async def test_claiming_ones_own_lease_extends_it_and_mark_processed_releases_it(
        store_url: str) -> None:
    store = SqlEventStore(store_url)
    try:
        now = 1_800_000_000.0
        result = await store.ingest(WebhookNotification.model_validate(notification()))
        [incident_id] = result.touched
        assert await store.claim(incident_id, "A", 10, now)
        assert await store.claim(incident_id, "A", 10, now + 8)  # ours: extended to +18
        [lease] = await store.list_leases(now)
        assert lease["expires_at"] == now + 18
        assert await store.pending_incidents() == [incident_id]
        await store.mark_processed(incident_id, None, release_owner="B")  # not B's lease
        assert len(await store.list_leases(now)) == 1
        assert await store.pending_incidents() == []
        await store.mark_processed(incident_id, None, release_owner="A")
        assert await store.list_leases(now) == []
    finally:
        await store.close()


async def test_a_write_that_raises_fails_alone_in_its_batch(store_url: str) -> None:
    """Writes share a transaction (group commit), run first without savepoints: one that
    raises must roll back alone, and the others of its batch still commit, exactly once."""
    store = SqlEventStore(store_url)

    def event(i: int) -> NewEvent:
        return NewEvent(EventType.MODE_CHANGED, Actor.operator(f"w{i}"), None,
                        {"mode": "observe", "i": i})

    def broken(conn: Any) -> None:
        store._append_in(conn, [event(99)])
        raise ValueError("bad job")

    try:
        good = [store.append([event(i)]) for i in range(5)]
        results = await asyncio.gather(*good[:2], store._write(broken), *good[2:],
                                       return_exceptions=True)
        assert isinstance(results[2], ValueError)
        assert all(isinstance(r, list) and len(r) == 1 for r in results[:2] + results[3:])
        logged = await store.list_events(types=[EventType.MODE_CHANGED])
        assert sorted(e.data["i"] for e in logged) == [0, 1, 2, 3, 4]
        assert [e.seq for e in logged] == [1, 2, 3, 4, 5]  # one linear chain, no gap
        verified = await store.verify()
        assert verified.ok and verified.checked == 5
    finally:
        await store.close()


async def test_combined_writes_run_as_one_call_and_one_that_raises_fails_alone(
        store_url: str) -> None:
    """Consecutive Combined jobs of one kind are one call in their batch; when that call
    raises, the batch runs again job by job and only the bad one fails (the writer thread's
    group commit, on both back ends)."""
    store = SqlEventStore(store_url)
    calls: list[list[int]] = []

    def many(_conn: Any, items: list[int]) -> list[int]:
        calls.append(items)
        if 13 in items:
            raise ValueError("13 is refused")
        return [i * 10 for i in items]

    release = threading.Event()
    held = asyncio.get_running_loop().run_in_executor(store._executor, release.wait, 30)
    try:
        jobs = [asyncio.ensure_future(store._write(Combined(many, i))) for i in (1, 2, 13, 4)]
        await asyncio.sleep(0.05)
        release.set()
        results = await asyncio.gather(*jobs, return_exceptions=True)
        assert results[:2] == [10, 20] and results[3] == 40
        assert isinstance(results[2], ValueError)
        assert calls[0] == [1, 2, 13, 4]  # together first, then each alone
        assert sorted(map(tuple, calls[1:])) == [(1,), (2,), (4,), (13,)]
    finally:
        release.set()
        await held
        await store.close()


async def test_after_a_server_restart_the_first_read_and_write_reconnect(
        pg_cluster: Any) -> None:
    """Pooled connections die with the server. Without a ping per checkout, the first
    statement on a dead one fails; the store replaces it and runs the read, or the batch that
    had written nothing yet, again once: no StoreUnavailable once the server is back."""
    store = SqlEventStore(pg_cluster.create_database())
    event = NewEvent(EventType.MODE_CHANGED, Actor.operator("t"), None, {"mode": "observe"})
    try:
        for _ in range(3):  # several pooled connections, read and write
            await asyncio.gather(store.append([event]), store.verify(), store.control_state())
        pg_cluster.stop("fast")
        pg_cluster.start()
        assert (await store.verify()).checked == 3
        assert await store.control_state() == {"mode": "observe"}
        [stored] = await store.append([event])
        assert stored.seq == 4
        assert (await store.verify()).ok
    finally:
        await store.close()


async def test_write_batches_of_two_replicas_take_the_chain_head_first_no_deadlock(
        pg_cluster: Any) -> None:
    """Replica A's batch locks a lease row, then appends; replica B's batch appends (the chain
    head), then touches that lease. Both orders met in the two-replica storm and PostgreSQL
    aborted one as a deadlock (a 503). Every write batch takes the head first: B waits for A's
    commit instead, and both land."""
    import threading

    from sre_agent.store.sql_leases import _CLAIM, RELEASE_LEASE

    url = pg_cluster.create_database()
    a, b = SqlEventStore(url), SqlEventStore(url)
    a_locked, b_has_head = threading.Event(), threading.Event()
    event = NewEvent(EventType.MODE_CHANGED, Actor.operator("t"), None, {"mode": "observe"})

    def job_a(conn: Any) -> None:
        conn.execute(_CLAIM["postgresql"], {"incident_id": "inc-x", "owner": "A",
                                             "expires_at": 2e9, "now": 1e9})
        a_locked.set()
        b_has_head.wait(2)  # B cannot get the head while A's batch holds it
        a._append_in(conn, [event])

    def job_b(conn: Any) -> None:
        b._append_in(conn, [event])
        b_has_head.set()
        conn.execute(RELEASE_LEASE, {"incident_id": "inc-x", "owner": "A"})

    try:
        await a.verify(), await b.verify()  # both connected and migrated
        first = asyncio.ensure_future(a._write(job_a))
        await asyncio.to_thread(a_locked.wait, 10)
        second = asyncio.ensure_future(b._write(job_b))
        await asyncio.gather(first, second)  # neither is a deadlock victim
        assert not b_has_head.is_set() or first.done()
        result = await a.verify()
        assert result.ok and result.checked == 2
        assert await a.list_leases(0) == []  # B's release ran after A's claim committed
    finally:
        await a.close()
        await b.close()
