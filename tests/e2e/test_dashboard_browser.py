"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against a real agent.

The agent is served by uvicorn on a free port with fake action backends (no Docker needed), so
alerts posted to its webhook produce pending approvals that the browser approves. Every test
also checks that the page asked no host but the agent for anything and raised no script error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sre_agent.bootstrap import Services
from tests.support.browser import (
    ARTIFACTS,
    OPERATOR_TOKEN,
    AgentServer,
    fake_agent_app,
    launch_chromium,
    operator_client,
    require_chromium,
    wait_for,
)
from tests.support.components import require
from tests.support.fakes import FakeBackend
from tests.support.payloads import alert, notification

try:
    from playwright.sync_api import Page, expect, sync_playwright
except ImportError:  # the browser fixture skips locally and fails under CI=true
    sync_playwright = None

pytestmark = pytest.mark.e2e
DOCS_SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "dashboard.png"
WAIT_MS = 15_000
if sync_playwright is not None:
    # expect() waits 5 s by default, page.set_default_timeout does not reach it: these files
    # run beside others on the test workers, where a page can take longer than that.
    expect.set_options(timeout=WAIT_MS)


@dataclass
class Agent:
    tmp_path: Path
    server: AgentServer
    container: Services
    backend: FakeBackend
    restarts: list[AgentServer] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def post_alert(self, payload: dict[str, Any]) -> str:
        with operator_client(self.base_url) as c:
            r = c.post("/webhook/alertmanager", json=payload)
            assert r.status_code == 200, r.text
            return str(r.json()["incidents"][0])

    def api(self) -> httpx.Client:
        return operator_client(self.base_url)

    def restart(self) -> None:
        """Stop the server, then serve a new agent on the same port and the same SQLite file."""
        port = self.server.port
        self.server.stop()
        app, self.container, self.backend = fake_agent_app(self.tmp_path,
                                                           operator_token=OPERATOR_TOKEN)
        self.server = AgentServer(app, port).start()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    require(sync_playwright is not None, "playwright is not installed")
    with sync_playwright() as pw:
        chromium = launch_chromium(pw)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[Agent]:
    app, container, backend = fake_agent_app(tmp_path, operator_token=OPERATOR_TOKEN)
    server = AgentServer(app).start()
    state = Agent(tmp_path, server, container, backend)
    try:
        yield state
    finally:
        state.server.stop()


@pytest.fixture
def page(browser: Any, agent: Agent) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900},
                                  accept_downloads=True)
    requested: list[str] = []
    errors: list[str] = []
    dialogs: list[str] = []
    context.on("request", lambda req: requested.append(req.url))
    the_page = context.new_page()
    the_page.on("pageerror", lambda exc: errors.append(str(exc)))
    the_page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    the_page.set_default_timeout(WAIT_MS)
    try:
        yield the_page
    finally:
        context.close()
    origin = agent.base_url + "/"
    assert requested, "the page made no request at all"
    strangers = [url for url in requested if not url.startswith(origin)]
    assert strangers == [], f"the page asked other hosts: {strangers}"
    assert errors == [], f"script errors: {errors}"
    assert dialogs == [], f"a dialog opened (injected script?): {dialogs}"


def log_in(page: Page, agent: Agent, name: str = "alice") -> None:
    page.goto(agent.base_url + "/status")
    expect(page).to_have_url(f"{agent.base_url}/login?next=%2Fstatus")
    page.get_by_label("Your name").fill(name)
    page.get_by_label("Operator token").fill(OPERATOR_TOKEN)
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(f"{agent.base_url}/status")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")


def mark_no_reload(page: Page) -> None:
    page.evaluate("window.__sameDocument = true")


def assert_no_reload(page: Page) -> None:
    assert page.evaluate("window.__sameDocument === true"), "the page was reloaded"


def confirm(page: Page, comment: str = "", *, button: str | None = None) -> None:
    """Answer the confirmation dialog: type the comment, press its confirm button."""
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_be_visible()
    if comment:
        dialog.get_by_role("textbox").fill(comment)
    ok = dialog.locator("#confirm-ok")
    if button is not None:
        expect(ok).to_have_text(button)
    ok.click()
    expect(dialog).to_be_hidden()


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


# --- the tests -----------------------------------------------------------------------------------
def test_login_then_a_new_alert_appears_without_reload(page: Page, agent: Agent) -> None:
    log_in(page, agent)
    assert OPERATOR_TOKEN not in page.content()
    cookies = page.context.cookies()
    session = next(c for c in cookies if c["name"] == "sre_agent_session")
    assert session["httpOnly"] is True and session["sameSite"] == "Strict"
    assert page.evaluate("document.cookie") == ""  # HttpOnly: scripts cannot read it
    mark_no_reload(page)
    agent.post_alert(notification([alert(name="DiskFull", fingerprint="d1",
                                          labels={"container": "db"})], group_key="g-disk"))
    incidents = page.locator("#sec-incidents")
    expect(incidents).to_contain_text("DiskFull", timeout=WAIT_MS)
    expect(page.locator("#sec-approvals")).to_contain_text("restart container")
    assert_no_reload(page)


def test_approving_a_pending_action_runs_it(page: Page, agent: Agent) -> None:
    log_in(page, agent)
    mark_no_reload(page)
    agent.post_alert(notification())
    approvals = page.locator("#sec-approvals")
    approve = approvals.get_by_role("button", name="Approve restart container on web")
    expect(approve).to_be_visible(timeout=WAIT_MS)
    action_id = approvals.locator("tr[data-action-id]").first.get_attribute("data-action-id")
    expect(approvals.locator(".countdown")).to_contain_text("expires in")
    approve.click()
    confirm(page, "checked the logs: a restart is safe", button="Approve")
    row = page.locator(f'#sec-actions tr[data-action-id="{action_id}"]')
    expect(row.locator(".action-status")).to_contain_text("verified", timeout=WAIT_MS)
    expect(row).to_contain_text("passed")
    expect(approvals).to_contain_text("Nothing is waiting for a decision.")
    expect(page.locator("#sec-effectiveness")).to_contain_text("TargetDown")
    assert len(agent.backend.executed) == 1
    with agent.api() as api:
        action = api.get(f"/actions?incident={agent.backend.executed[0].incident_id}").json()[0]
    assert action["status"] == "verified" and action["decided_by"] == "operator:alice"
    with agent.api() as api:
        [approved] = api.get("/audit", params={"type": "ActionApproved"}).json()["items"]
    assert approved["data"]["reason"] == "checked the logs: a restart is safe"
    assert approved["actor"] == "operator:alice"
    assert_no_reload(page)


def test_reject_keeps_the_action_from_running(page: Page, agent: Agent) -> None:
    log_in(page, agent)
    agent.post_alert(notification())
    reject = page.get_by_role("button", name="Reject restart container on web")
    reject.click(timeout=WAIT_MS)
    confirm(page, "not during the sale", button="Reject")
    expect(page.locator("#sec-actions .action-status").first).to_contain_text("rejected")
    assert agent.backend.executed == []
    with agent.api() as api:
        [rejected] = api.get("/audit", params={"type": "ActionRejected"}).json()["items"]
    assert rejected["data"]["reason"] == "not during the sale"


def test_cancelling_the_confirmation_does_nothing(page: Page, agent: Agent) -> None:
    log_in(page, agent)
    agent.post_alert(notification())
    page.get_by_role("button", name="Approve restart container on web").click(timeout=WAIT_MS)
    dialog = page.locator("#confirm-dialog")
    expect(dialog).to_contain_text("Approve restart container on web?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    page.get_by_role("button", name="Pause all actions").click()
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")  # the native dialog closes on Escape
    expect(dialog).to_be_hidden()
    page.wait_for_timeout(500)
    with agent.api() as api:
        assert api.get("/status").json()["paused"] is False
        assert api.get("/actions").json()[0]["status"] == "pending_approval"
    assert agent.backend.executed == []


def test_pause_resume_and_mode_with_mouse_and_keyboard(page: Page, agent: Agent) -> None:
    log_in(page, agent)
    control = page.locator("#sec-control")
    page.get_by_role("button", name="Pause all actions").click()
    confirm(page, "deploy freeze until 06:00", button="Pause")
    expect(control).to_contain_text("paused: no action runs")
    expect(control.get_by_test_id("paused-by")).to_have_text("operator:alice")
    expect(control.get_by_test_id("paused-why")).to_have_text("deploy freeze until 06:00")
    with agent.api() as api:
        assert api.get("/status").json()["paused"] is True
    # The Resume button is reachable with Tab and works with Enter, with a visible focus ring.
    page.locator("body").focus()
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement && document.activeElement.id") == "resume-btn":
            break
    else:
        pytest.fail("the Resume button is not reachable with the keyboard")
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", ""), "no visible focus indicator"
    page.keyboard.press("Enter")
    expect(control).to_contain_text("active")
    expect(page.get_by_role("button", name="Pause all actions")).to_be_visible()
    page.get_by_label("Mode").select_option("dry_run")
    page.get_by_role("button", name="Set mode").click()
    expect(page.get_by_test_id("mode")).to_have_text("Dry run")
    with agent.api() as api:
        status = api.get("/status").json()
        assert status["mode"] == "dry_run" and status["paused"] is False
        actors = [e["actor"] for e in api.get(
            "/audit", params={"type": ["Paused", "Resumed", "ModeChanged"]}).json()["items"]]
    assert actors == ["operator:alice"] * 3


def test_incident_page_and_report_download(page: Page, agent: Agent) -> None:
    log_in(page, agent)
    inc = agent.post_alert(notification())
    link = page.locator(f'#sec-incidents tr[data-incident-id="{inc}"] a').first
    link.click(timeout=WAIT_MS)
    expect(page).to_have_url(f"{agent.base_url}/incidents/{inc}")
    expect(page.locator("h1")).to_contain_text("TargetDown: target down")
    expect(page.locator("#sec-diagnosis")).to_contain_text("stopped answering")
    expect(page.locator("#sec-diagnosis")).to_contain_text("0.86")
    expect(page.locator("#sec-timeline")).to_contain_text("IncidentOpened")
    # Approve from the incident page; its timeline follows live.
    mark_no_reload(page)
    page.locator("#sec-decisions").get_by_role("button", name="Approve").click()
    confirm(page)
    expect(page.locator("#sec-timeline")).to_contain_text("VerificationPassed", timeout=WAIT_MS)
    expect(page.locator("#sec-decisions")).to_contain_text("verified")
    assert_no_reload(page)
    agent.post_alert(notification([alert(status="resolved")]))
    expect(page.locator("#sec-head")).to_contain_text("resolved", timeout=WAIT_MS)
    shot(page, "incident-1280.png")
    with page.expect_download() as info:
        page.get_by_role("link", name="Download report").click()
    download = info.value
    assert download.suggested_filename == f"{inc}.md"
    ARTIFACTS.mkdir(exist_ok=True)
    saved = ARTIFACTS / "incident-report.md"
    download.save_as(str(saved))
    text = saved.read_text()
    assert text.startswith("# Post-incident report: TargetDown: target down")
    for part in ("## Timeline", "approved", "operator:alice", "passed", "**Time to recover:**",
                 "**Status:** resolved", "First event:", "Last event:"):
        assert part in text, part
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "incident-390.png")


def test_the_page_asks_no_other_host_and_hostile_alerts_stay_text(
        page: Page, agent: Agent) -> None:
    hostile = alert(name="Hostile", fingerprint="h1", labels={"container": "web"},
                    annotations={"summary": '<img src="http://evil.example/x.png" '
                                            'onerror="alert(1)"><script>alert(2)</script>',
                                 "runbook": '<link rel="stylesheet" href="http://evil.example/">'})
    hostile["generatorURL"] = "http://evil.example/graph"
    inc = agent.post_alert(notification([hostile], group_key="g-hostile"))
    log_in(page, agent)
    expect(page.locator("#sec-incidents")).to_contain_text('<img src="http://evil.example/x.png"')
    page.goto(f"{agent.base_url}/incidents/{inc}")
    expect(page.locator("#sec-alerts")).to_contain_text("<script>alert(2)</script>")
    page.wait_for_load_state("load")  # the whole document, not only the part already parsed
    assert page.locator("#sec-alerts img, #sec-alerts script").count() == 0
    page.wait_for_timeout(1500)  # let anything that would load, load
    # The page fixture asserts at teardown that no request left the agent's origin.


def test_the_page_reconnects_after_the_server_restarts(page: Page, agent: Agent) -> None:
    log_in(page, agent)
    mark_no_reload(page)
    agent.restart()
    agent.post_alert(notification([alert(name="AfterRestart", fingerprint="r1")],
                                  group_key="g-restart"))
    expect(page.locator("#sec-incidents")).to_contain_text("AfterRestart", timeout=30_000)
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    assert_no_reload(page)


def test_screenshots_at_desktop_and_phone_width(page: Page, agent: Agent) -> None:
    log_in(page, agent)
    first = agent.post_alert(notification())
    approve = page.get_by_role("button", name="Approve restart container on web")
    approve.click(timeout=WAIT_MS)
    confirm(page)
    wait_for(lambda: agent.backend.executed, what="the approved restart")
    expect(page.locator("#sec-actions")).to_contain_text("verified", timeout=WAIT_MS)
    agent.post_alert(notification([alert(status="resolved")]))
    agent.post_alert(notification([alert(
        name="HighLatency", fingerprint="l1", labels={"container": "api", "severity": "warning"},
        annotations={"summary": "p99 latency above 2s for 5m"})], group_key="g-latency"))
    agent.post_alert(notification([alert(
        name="ContainerOOMKilled", fingerprint="o1", labels={"container": "worker"},
        annotations={"summary": "worker was OOM-killed 3 times in 10m"})], group_key="g-oom"))
    expect(page.locator("#sec-approvals tr[data-action-id]")).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator("#sec-incidents")).to_contain_text("ContainerOOMKilled")
    with agent.api() as api:
        assert api.get(f"/incidents/{first}").json()["status"] == "resolved"
    page.mouse.move(0, 0)  # no hover highlight in the picture
    expect(page.locator("#notice")).to_be_hidden(timeout=WAIT_MS)
    page.wait_for_timeout(1500)  # let the highlight of new rows fade
    desktop = shot(page, "dashboard-1280.png")
    if os.environ.get("SRE_AGENT_UPDATE_DOCS_SCREENSHOT") == "1":  # refresh the README image
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(desktop, DOCS_SCREENSHOT)
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(200)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page scrolls sideways at phone width ({width}px)"
    shot(page, "dashboard-390.png")
    page.context.clear_cookies()
    page.goto(agent.base_url + "/status")
    shot(page, "login-390.png")


def test_ack_assign_note_and_resolve_from_the_incident_page(page: Page, agent: Agent) -> None:
    log_in(page, agent, "bob")
    inc = agent.post_alert(notification())
    page.goto(f"{agent.base_url}/incidents/{inc}")
    head = page.locator("#sec-head")
    expect(page.locator("#sec-decisions .countdown")).to_contain_text("expires in",
                                                                      timeout=WAIT_MS)
    mark_no_reload(page)
    page.get_by_role("button", name="Acknowledge").click()
    expect(head.get_by_test_id("acknowledged")).to_contain_text("by operator:bob")
    expect(page.get_by_role("button", name="Acknowledge")).to_have_count(0)
    page.get_by_label("Assign to").fill("carol")
    page.get_by_role("button", name="Assign", exact=True).click()
    expect(head.get_by_test_id("assignee")).to_contain_text("carol")
    page.get_by_label("Add a note to the timeline").fill("LB health checks <flapping>")
    page.get_by_role("button", name="Add note").click()
    timeline = page.locator("#sec-timeline")
    expect(timeline).to_contain_text("Note from operator:bob: LB health checks <flapping>")
    expect(page.get_by_label("Add a note to the timeline")).to_have_value("")
    page.get_by_role("button", name="Resolve by hand").click()
    confirm(page, "fixed the LB by hand", button="Resolve")
    expect(head).to_contain_text("Resolved", timeout=WAIT_MS)
    expect(head.locator(".badge").nth(1)).to_contain_text("resolved")
    expect(timeline).to_contain_text("Resolved by operator:bob: fixed the LB by hand")
    expect(page.get_by_role("button", name="Resolve by hand")).to_have_count(0)
    assert_no_reload(page)
    with agent.api() as api:
        items = api.get("/audit", params={"type": [
            "IncidentAcknowledged", "IncidentAssigned", "NoteAdded", "IncidentResolved"]}
            ).json()["items"]
        # The pending approval of the resolved incident expires.
        wait_for(lambda: api.get(f"/actions?incident={inc}").json()[0]["status"] == "expired",
                 what="the pending approval to expire")
    assert [(e["type"], e["actor"]) for e in items] == [
        ("IncidentAcknowledged", "operator:bob"), ("IncidentAssigned", "operator:bob"),
        ("NoteAdded", "operator:bob"), ("IncidentResolved", "operator:bob")]
    # Without Alertmanager the page says why it cannot silence.
    expect(page.get_by_test_id("no-silence")).to_contain_text("ALERTMANAGER_URL")


def test_a_big_incident_pages_its_alerts_and_folds_its_timeline(page: Page, agent: Agent
                                                                ) -> None:
    alerts = [alert(name="HighLatency", fingerprint=f"{i:016x}",
                    labels={"instance": f"web-{i}:8080", "severity": "warning"})
              for i in range(250)]
    inc = agent.post_alert(notification(alerts, group_key="g-big"))
    log_in(page, agent)
    page.goto(f"{agent.base_url}/incidents/{inc}")
    section = page.locator("#sec-alerts")
    expect(section.locator(".pager").first).to_contain_text("Alerts 1-100 of 250")
    expect(page.locator("#sec-timeline")).to_contain_text("245 more alerts received")
    section.get_by_role("link", name="Next 100").first.click()
    expect(page).to_have_url(f"{agent.base_url}/incidents/{inc}?alerts_offset=100"
                             "&alerts_limit=100#sec-alerts")
    expect(section.locator(".pager").first).to_contain_text("Alerts 101-200 of 250")
    expect(section).to_contain_text("web-100:8080")
    section.get_by_role("link", name="Next 100").first.click()
    expect(section.locator(".pager").first).to_contain_text("Alerts 201-250 of 250")
    expect(section.get_by_role("link", name="Next 100")).to_have_count(0)
    section.get_by_role("link", name="Previous 100").first.click()
    expect(section.locator(".pager").first).to_contain_text("Alerts 101-200 of 250")
    # count() does not wait: the pager can be parsed while the rows after it still arrive.
    expect(page.locator("#sec-alerts tbody tr")).to_have_count(100)


def test_silence_from_the_incident_page_reaches_alertmanager(browser: Any, tmp_path: Path
                                                             ) -> None:
    from tests.support.alertmanager import list_silences, running_alertmanager

    with running_alertmanager(tmp_path / "am") as am:
        app, container, backend = fake_agent_app(tmp_path, operator_token=OPERATOR_TOKEN,
                                                 alertmanager_url=am.url)
        server = AgentServer(app).start()
        agent = Agent(tmp_path, server, container, backend)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        try:
            page = context.new_page()
            page.set_default_timeout(WAIT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            inc = agent.post_alert(notification())
            log_in(page, agent, "dana")
            page.goto(f"{agent.base_url}/incidents/{inc}")
            page.get_by_label("Silence this incident's alert in Alertmanager").select_option(
                label="4 hours")
            page.get_by_role("button", name="Silence").click()
            expect(page.locator("#sec-timeline")).to_contain_text(
                "Alert silenced in Alertmanager by operator:dana for 4h", timeout=WAIT_MS)
            assert errors == []
        finally:
            context.close()
            server.stop()
        [silence] = [s for s in list_silences(am.url) if f"incident {inc}" in s["comment"]]
        matchers = {m["name"]: m["value"] for m in silence["matchers"]}
        assert matchers["alertname"] == "TargetDown" and silence["status"]["state"] == "active"
