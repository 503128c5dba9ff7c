"""The browser-facing API: content negotiation, login and CSRF, the report, and live events.

Requests go through ASGITransport where nothing streams; the Server-Sent Events tests use a
real uvicorn server on a free port, because ASGITransport buffers a streaming body.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.api.app import create_app
from sre_agent.api.routes import events as events_route
from sre_agent.web.sessions import COOKIE_NAME
from tests.conftest import make_settings
from tests.support.browser import OPERATOR_TOKEN, fake_agent_app, operator_client, serve
from tests.support.components import free_port, settle, wait_ready
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration
HTML = {"accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
URL = "/webhook/alertmanager"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
async def open_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An agent with no operator token (the loopback default)."""
    app = create_app(make_settings(tmp_path))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test") as c:
        yield c


@pytest.fixture
async def token_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An agent that requires the operator token; the client sends no credentials itself."""
    app = create_app(make_settings(tmp_path, operator_token=OPERATOR_TOKEN))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test") as c:
        yield c




def bearer() -> dict[str, str]:
    return {"authorization": f"Bearer {OPERATOR_TOKEN}"}


async def log_in(c: httpx.AsyncClient, name: str = "alice") -> tuple[str, str]:
    """Log in through the form; returns the session cookie header and the page's CSRF token."""
    r = await c.post("/login", data={"token": OPERATOR_TOKEN, "name": name,
                                     "next": "/status"})
    assert r.status_code == 303, r.text
    value = r.cookies[COOKIE_NAME]
    cookie = f"{COOKIE_NAME}={value}"
    c.cookies.clear()
    page = await c.get("/status", headers={**HTML, "cookie": cookie})
    assert page.status_code == 200
    marker = '<meta name="csrf-token" content="'
    csrf = page.text.split(marker, 1)[1].split('"', 1)[0]
    assert csrf
    return cookie, csrf


# --- content negotiation -------------------------------------------------------------------------
async def test_status_is_a_dashboard_for_browsers_and_json_for_programs(
        open_client: httpx.AsyncClient) -> None:
    await open_client.post(URL, json=notification())
    page = await open_client.get("/status", headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert page.headers["x-frame-options"] == "DENY"
    for section in ("Pending approvals", "Open incidents", "Recent actions", "Components",
                    "Effectiveness", "Circuit breakers", "Audit chain", "TargetDown"):
        assert section in page.text, section
    assert "<script>" not in page.text  # only the external script file
    as_json = await open_client.get("/status")
    assert as_json.headers["content-type"] == "application/json"
    counts = as_json.json()["incidents"]
    assert counts["open"] + counts["escalated"] == 1  # escalated once the rules have run
    also_json = await open_client.get("/status", headers={"accept": "application/json"})
    assert set(also_json.json()) == set(as_json.json())


async def test_open_incidents_tile_and_table_count_the_same_incidents(
        open_client: httpx.AsyncClient) -> None:
    import re

    await open_client.post(URL, json=notification())  # TargetDown, no container: escalated
    quiet = alert(name="QueueBacklog", fingerprint="tile000000000001", expr="queue > 5")
    await open_client.post(URL, json=notification([quiet], group_key="{}:{q}"))
    await settle(open_client)
    counts = (await open_client.get("/status")).json()["incidents"]
    page = (await open_client.get("/status", headers=HTML)).text
    tile = re.search(r'id="tile-open">(\d+)<', page)
    table = re.search(r'id="count-open">([^<]+)<', page)
    assert tile and table
    rows = page.split('id="sec-incidents"', 1)[1].split("</section>", 1)[0]
    listed = rows.count("data-incident-id=")
    assert int(tile.group(1)) == counts["open"] + counts["escalated"] == listed == 2
    assert table.group(1).strip() == "2"


async def test_incident_page_and_unchanged_json(open_client: httpx.AsyncClient) -> None:
    inc = (await open_client.post(URL, json=notification())).json()["incidents"][0]
    page = await open_client.get(f"/incidents/{inc}", headers=HTML)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    for part in ("Timeline", "Diagnosis", "Decisions", "Alerts", "IncidentOpened",
                 f"/incidents/{inc}/report"):
        assert part in page.text, part
    detail = (await open_client.get(f"/incidents/{inc}")).json()
    assert {"id", "alerts", "events", "status", "title"} <= set(detail)
    assert (await open_client.get("/incidents/inc-missing", headers=HTML)).status_code == 404
    assert (await open_client.get("/incidents/inc-missing")).status_code == 404


async def test_alert_text_is_escaped_and_unsafe_links_dropped(
        open_client: httpx.AsyncClient) -> None:
    hostile = alert(annotations={"summary": HOSTILE, "description": "</td></tr><h1>x</h1>"},
                    labels={"container": "<b>web</b>"}, expr="up")
    hostile["generatorURL"] = "javascript:alert(1)"
    inc = (await open_client.post(URL, json=notification([hostile]))).json()["incidents"][0]
    for path in ("/status", f"/incidents/{inc}"):
        text = (await open_client.get(path, headers=HTML)).text
        assert "<script>alert" not in text and "<img src=x" not in text and "<h1>x" not in text
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in text
        assert "<b>web</b>" not in text
        assert 'href="javascript:' not in text


async def test_bidi_and_invisible_characters_are_shown_not_obeyed(
        open_client: httpx.AsyncClient) -> None:
    tricky = alert(name="Disk\u202eFull", fingerprint="bidi000000000001",
                   annotations={"summary": "ok \u202erestart container admin\u202c done\u200b"},
                   labels={"container": "web\u2066x\u2069"})
    inc = (await open_client.post(URL, json=notification([tricky]))).json()["incidents"][0]
    await settle(open_client)
    for path in ("/status", f"/incidents/{inc}"):
        text = (await open_client.get(path, headers=HTML)).text
        for hidden in ("\u202e", "\u202c", "\u200b", "\u2066", "\u2069"):
            assert hidden not in text, (path, hex(ord(hidden)))
        assert "⟨U+202E⟩" in text
    report = (await open_client.get(f"/incidents/{inc}/report")).text
    assert "\u202e" not in report and "⟨U+202E⟩" in report
    # The data itself is kept as received: the JSON API and the log are not rewritten.
    raw = (await open_client.get(f"/incidents/{inc}")).json()
    assert raw["alerts"][0]["labels"]["alertname"] == "Disk\u202eFull"


def audit_text(page: str) -> str:
    return page.split('id="h-audit"', 1)[1].split("</section>", 1)[0]


async def test_dashboard_audit_status_follows_the_log_and_sees_tampering(
        tmp_path: Path, open_client: httpx.AsyncClient) -> None:
    await open_client.post(URL, json=notification())
    await settle(open_client)
    first = audit_text((await open_client.get("/status", headers=HTML)).text)
    checked = int(first.split(" events checked")[0].rsplit(">", 1)[1])
    assert "intact" in first and checked >= 2
    await open_client.post(URL, json=notification([alert(status="resolved")]))
    await settle(open_client)
    later = audit_text((await open_client.get("/status", headers=HTML)).text)
    assert f"{checked + 2} events checked" in later  # AlertResolved + IncidentResolved
    with sqlite3.connect(tmp_path / "agent.db") as db:
        db.execute("UPDATE events SET actor = 'mallory' WHERE seq = 2")
    # The incremental check trusts what it verified; a full walk (as after a restart) does not.
    app = create_app(make_settings(tmp_path))
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent.test") as fresh:
        broken = audit_text((await fresh.get("/status", headers=HTML)).text)
    assert "broken at seq 2" in broken and "hash does not match" in broken


async def test_openapi_documents_events_and_report(open_client: httpx.AsyncClient) -> None:
    paths = (await open_client.get("/openapi.json")).json()["paths"]
    events = paths["/events"]["get"]
    assert "text/event-stream" in events["responses"]["200"]["content"]
    assert {p["name"] for p in events["parameters"]} >= {"since", "last-event-id"}
    assert "401" in events["responses"]
    report = paths["/incidents/{incident_id}/report"]["get"]
    assert "text/markdown" in report["responses"]["200"]["content"]
    assert "404" in report["responses"]
    assert "text/html" in paths["/status"]["get"]["responses"]["200"]["content"]
    assert paths["/status"]["get"]["responses"]["200"]["content"]["application/json"][
        "schema"]["$ref"].endswith("/StatusOut")
    assert "/login" not in paths and "/logout" not in paths


async def test_report_is_a_markdown_attachment(open_client: httpx.AsyncClient) -> None:
    inc = (await open_client.post(URL, json=notification([alert(
        annotations={"summary": "# heading\n```\nfence"})]))).json()["incidents"][0]
    await open_client.post(URL, json=notification([alert(status="resolved")]))
    await settle(open_client)
    r = await open_client.get(f"/incidents/{inc}/report")
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/markdown; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="{inc}.md"'
    text = r.text
    assert text.startswith("# Post-incident report: TargetDown: \\# heading \\`\\`\\` fence")
    for part in ("## Timeline", "## Diagnosis", "## Actions and outcomes", "**Time to recover:**",
                 "**Status:** resolved", "IncidentResolved", "## Audit"):
        assert part in text, part
    events = (await open_client.get(f"/incidents/{inc}")).json()["events"]
    assert f"hash `{events[0]['hash']}`" in text and f"hash `{events[-1]['hash']}`" in text
    assert (await open_client.get("/incidents/inc-missing/report")).status_code == 404


async def test_root_and_static_files(open_client: httpx.AsyncClient) -> None:
    r = await open_client.get("/")
    assert r.status_code == 303 and r.headers["location"] == "/status"
    js = await open_client.get("/static/dashboard.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert "EventSource" in js.text
    css = await open_client.get("/static/dashboard.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert (await open_client.get("/static/../app.py")).status_code == 404
    assert (await open_client.get("/static/nope.js")).status_code == 404


# --- auth: login, cookies, CSRF -------------------------------------------------------------------
async def test_browsers_are_sent_to_login_and_programs_get_401(
        token_client: httpx.AsyncClient) -> None:
    page = await token_client.get("/status", headers=HTML)
    assert page.status_code == 303 and page.headers["location"] == "/login?next=%2Fstatus"
    deep = await token_client.get("/incidents/inc-1?x=1", headers=HTML)
    assert deep.headers["location"] == "/login?next=%2Fincidents%2Finc-1%3Fx%3D1"
    assert (await token_client.get("/status")).status_code == 401
    assert (await token_client.get("/events")).status_code == 401
    assert (await token_client.get("/incidents/inc-1/report")).status_code == 401
    form = await token_client.get("/login?next=/incidents/inc-1")
    assert form.status_code == 200 and 'type="password"' in form.text
    assert 'value="/incidents/inc-1"' in form.text
    assert OPERATOR_TOKEN not in form.text


async def test_login_sets_a_strict_httponly_cookie_and_never_shows_the_token(
        token_client: httpx.AsyncClient) -> None:
    wrong = await token_client.post("/login", data={"token": "not-the-token", "next": "/x"})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    assert "not the operator token" in wrong.text
    r = await token_client.post("/login", data={"token": OPERATOR_TOKEN, "name": "alice",
                                                "next": "//evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/status"
    flags = [f.strip().lower() for f in r.headers["set-cookie"].split(";")]
    assert flags[0].startswith(f"{COOKIE_NAME}=")
    assert "httponly" in flags and "samesite=strict" in flags and "path=/" in flags
    assert any(f.startswith("max-age=") and int(f.split("=")[1]) > 0 for f in flags)
    assert OPERATOR_TOKEN not in r.headers["set-cookie"]
    cookie, csrf = await log_in(token_client)
    page = await token_client.get("/status", headers={**HTML, "cookie": cookie})
    assert OPERATOR_TOKEN not in page.text and "Log out alice" in page.text
    assert csrf not in cookie
    # Logged in already: the form sends you straight on.
    again = await token_client.get("/login?next=/status", headers={"cookie": cookie})
    assert again.status_code == 303


async def test_cookie_requests_need_the_csrf_token_bearer_requests_do_not(
        token_client: httpx.AsyncClient) -> None:
    cookie, csrf = await log_in(token_client, "alice")
    as_cookie = {"cookie": cookie}
    assert (await token_client.get("/control/breakers", headers=as_cookie)).status_code == 200
    no_csrf = await token_client.post("/control/pause", headers=as_cookie)
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["detail"]
    bad = await token_client.post("/control/pause", headers={**as_cookie,
                                                             "x-csrf-token": csrf[:-2] + "xx"})
    assert bad.status_code == 403
    ok = await token_client.post("/control/pause", headers={**as_cookie, "x-csrf-token": csrf})
    assert ok.status_code == 200 and ok.json()["paused"] is True
    by_token = await token_client.post("/control/resume", headers=bearer())
    assert by_token.status_code == 200 and by_token.json()["paused"] is False
    wrong_bearer = await token_client.post("/control/resume", headers={
        **as_cookie, "x-csrf-token": csrf, "authorization": "Bearer wrong-token-123"})
    assert wrong_bearer.status_code == 401
    actors = [e["actor"] for e in (await token_client.get(
        "/audit", params={"type": ["Paused", "Resumed"]}, headers=bearer())).json()["items"]]
    assert actors == ["operator:alice", "operator:token"]


async def test_tampered_or_logged_out_cookie_is_refused(token_client: httpx.AsyncClient) -> None:
    cookie, csrf = await log_in(token_client)
    tampered = cookie[:-3] + ("abc" if not cookie.endswith("abc") else "xyz")
    assert (await token_client.get("/status", headers={"cookie": tampered})).status_code == 401
    assert (await token_client.post("/logout", headers={"cookie": cookie})).status_code == 403
    out = await token_client.post("/logout", data={"csrf_token": csrf},
                                  headers={"cookie": cookie})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert f'{COOKIE_NAME}=""' in out.headers["set-cookie"] or "max-age=0" in \
        out.headers["set-cookie"].lower()
    assert (await token_client.get("/status", headers={"cookie": cookie})).status_code == 401
    page = await token_client.get("/status", headers={**HTML, "cookie": cookie})
    assert page.status_code == 303


async def test_login_guessing_is_throttled(token_client: httpx.AsyncClient) -> None:
    for _ in range(10):
        r = await token_client.post("/login", data={"token": "guess-guess-guess"})
        assert r.status_code == 401
    blocked = await token_client.post("/login", data={"token": OPERATOR_TOKEN})
    assert blocked.status_code == 429 and "set-cookie" not in blocked.headers


async def test_without_a_token_no_login_but_cross_site_writes_are_refused(
        open_client: httpx.AsyncClient) -> None:
    r = await open_client.get("/login?next=/incidents/x")
    assert r.status_code == 303 and r.headers["location"] == "/incidents/x"
    assert (await open_client.get("/status", headers=HTML)).status_code == 200
    evil = await open_client.post("/control/pause", headers={"origin": "http://evil.example"})
    assert evil.status_code == 403
    fetch = await open_client.post("/control/pause", headers={"sec-fetch-site": "cross-site"})
    assert fetch.status_code == 403
    same = await open_client.post("/control/pause", headers={
        "origin": "http://agent.test", "sec-fetch-site": "same-origin"})
    assert same.status_code == 200
    assert (await open_client.post("/control/resume")).status_code == 200  # curl, scripts


# --- Server-Sent Events on a real server ----------------------------------------------------------
def read_events(lines: Iterator[str], count: int, *, collect: list[str] | None = None
                ) -> list[tuple[int, dict[str, Any]]]:
    """Parse ``count`` SSE messages (id + JSON data) from an iterator of lines."""
    out: list[tuple[int, dict[str, Any]]] = []
    seq: int | None = None
    for line in lines:
        if collect is not None:
            collect.append(line)
        if line.startswith("id: "):
            seq = int(line[4:])
        elif line.startswith("data: "):
            assert seq is not None
            out.append((seq, json.loads(line[6:])))
            if len(out) == count:
                return out
    raise AssertionError(f"stream ended after {len(out)} of {count} events")


def test_events_stream_new_events_and_resume_from_last_event_id(tmp_path: Path) -> None:
    app, _container, _backend = fake_agent_app(tmp_path, operator_token=OPERATOR_TOKEN)
    with serve(app) as srv, operator_client(srv.base_url) as c:
        with c.stream("GET", "/events", timeout=httpx.Timeout(10, read=20)) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            assert r.headers["cache-control"].startswith("no-cache")
            lines = r.iter_lines()
            assert next(lines) == f"retry: {events_route.RETRY_MS}"
            with operator_client(srv.base_url) as poster:
                assert poster.post(URL, json=notification()).status_code == 200
            got = read_events(lines, 2)
        assert [e["type"] for _, e in got] == ["IncidentOpened", "AlertReceived"]
        assert [s for s, _ in got] == [e["seq"] for _, e in got] == [1, 2]
        assert {"seq", "incident_id", "type", "at", "actor", "data", "prev_hash",
                "hash"} == set(got[0][1])
        # A reconnecting EventSource sends Last-Event-ID and gets exactly what it missed.
        with c.stream("GET", "/events", headers={"last-event-id": "1"}, params={"since": 0},
                      timeout=httpx.Timeout(10, read=20)) as r:
            resumed = read_events(r.iter_lines(), 1)
        assert resumed[0][0] == 2
        with c.stream("GET", "/events", params={"since": 0},
                      timeout=httpx.Timeout(10, read=20)) as r:
            replay = read_events(r.iter_lines(), 2)
        assert [s for s, _ in replay] == [1, 2]


def test_events_stream_sends_heartbeats_and_ends_when_the_client_leaves(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events_route, "HEARTBEAT_S", 0.3)
    app, _container, _backend = fake_agent_app(tmp_path)
    with serve(app) as srv, operator_client(srv.base_url, token=None) as c:
        for _ in range(3):  # each stream is closed by the client; the server must let go
            with c.stream("GET", "/events", timeout=httpx.Timeout(10, read=10)) as r:
                lines = r.iter_lines()
                seen = [next(lines) for _ in range(4)]
            assert ": keepalive" in seen, seen
        # Streams that the client abandoned do not hold the shutdown open (serve() stops it).
        started = time.monotonic()
    assert time.monotonic() - started < 10


def test_open_stream_does_not_block_a_sigterm_shutdown(tmp_path: Path) -> None:
    """``sre-agent serve`` under uvicorn's own signal handling: streams end on SIGTERM."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    env["SRE_AGENT_DATABASE_URL"] = f"sqlite:///{tmp_path / 'a.db'}"
    proc = subprocess.Popen([sys.executable, "-m", "sre_agent", "serve", "--port", str(port)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    ended = threading.Event()
    opened = threading.Event()

    def watch() -> None:
        try:
            with httpx.stream("GET", f"{base}/events", timeout=httpx.Timeout(5, read=60)) as r:
                for line in r.iter_lines():
                    if line.startswith("retry:"):
                        opened.set()
        except httpx.HTTPError:
            pass
        ended.set()

    try:
        wait_ready(base, 20)
        threading.Thread(target=watch, daemon=True).start()
        assert opened.wait(10), "stream did not open"
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)  # without stream shutdown this waits for the client forever
        assert ended.wait(5)
    finally:
        if proc.poll() is None:
            proc.kill()
        _out, err = proc.communicate(timeout=10)
    assert proc.returncode in (0, -signal.SIGTERM), err.decode()[-2000:]
    assert "agent_stopped" in err.decode()
