"""Security: auth on every route (from the app's own route table), constant-time comparisons,
secrets never in logs, API output, the event log or reports."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from sre_agent.api import auth
from sre_agent.api.app import create_app
from tests.conftest import make_settings
from tests.support.components import free_port, wait_ready
from tests.support.payloads import alert, notification

pytestmark = pytest.mark.integration

WEBHOOK_TOKEN = "wh-secret-7f3a9c1e55"
OPERATOR_TOKEN = "op-secret-2b8d4e6f99"
LLM_KEY = "sk-secret-llm-key-0123456789"
BASIC_PASSWORD = "basic-secret-pw-4455"
SLACK_SECRET = "slack-signing-secret-778899"
SLACK_TOKEN = "xoxb-slack-bot-token-112233"
TEAMS_SIG = "teams-workflow-sig-0099887766"
PD_KEY = "pdroutingkey00112233445566778899"
SECRETS = (WEBHOOK_TOKEN, OPERATOR_TOKEN, LLM_KEY, BASIC_PASSWORD, SLACK_SECRET, SLACK_TOKEN,
           TEAMS_SIG, PD_KEY)
# Slack's button clicks authenticate by Slack's signature (a request without one is 401).
SLACK = {"slack_bot_token": SLACK_TOKEN, "slack_channel": "C0SEC",
         "slack_signing_secret": SLACK_SECRET, "slack_api_url": "http://127.0.0.1:9/api"}

# Routes anyone may call. Anything else must refuse an anonymous request: a new route that
# forgets its auth dependency fails test_every_route_requires_auth.
OPEN = {"/health", "/ready", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect",
        "/redoc", "/login", "/logout", "/static", "/"}
WEBHOOK = {"/webhook/alertmanager", "/webhook/alerts"}


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _walk(routes: list[Any], prefix: str = "") -> list[tuple[str, str]]:
    """Every (method, path) served, including routes inside included routers."""
    found: list[tuple[str, str]] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found += [(m, prefix + route.path) for m in sorted(route.methods - {"HEAD",
                                                                                "OPTIONS"})]
        elif hasattr(route, "original_router"):  # FastAPI's included router
            found += _walk(route.original_router.routes,
                           prefix + getattr(route.include_context, "prefix", ""))
        elif isinstance(route, Route) and route.methods:
            found += [(m, prefix + route.path) for m in sorted(route.methods - {"HEAD"})]
    return found


def app_routes() -> list[tuple[str, str]]:
    # A folder of its own: a shared /tmp/agent.db may hold another branch's newer schema.
    app = create_app(make_settings(Path(tempfile.mkdtemp(prefix="sre-routes-")),
                                   operator_token=OPERATOR_TOKEN,
                                   webhook_token=WEBHOOK_TOKEN, **SLACK))
    return sorted(set(_walk(list(app.routes))))


ROUTES = app_routes()
SECURED = [(m, p) for m, p in ROUTES if p not in OPEN and not p.startswith("/static")]


@pytest.fixture
async def secured(tmp_path: Path):
    settings = make_settings(tmp_path, operator_token=OPERATOR_TOKEN,
                             webhook_token=WEBHOOK_TOKEN, **SLACK)
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://agent") as c:
        yield c


def test_route_table_is_complete() -> None:
    paths = {p for _, p in SECURED}
    assert {"/status", "/incidents", "/actions", "/control/pause", "/audit",
            "/webhook/alertmanager", "/integrations/slack/interactions"} <= paths


@pytest.mark.parametrize(("method", "path"), SECURED, ids=[f"{m} {p}" for m, p in SECURED])
async def test_every_route_requires_auth(secured: httpx.AsyncClient, method: str,
                                         path: str) -> None:
    url = concrete(path)
    anonymous = await secured.request(method, url, headers={"accept": "application/json"},
                                      json={})
    assert anonymous.status_code == 401, (method, path, anonymous.status_code)
    wrong = await secured.request(method, url, json={}, headers={
        "authorization": "Bearer not-the-token-000", "accept": "application/json"})
    assert wrong.status_code == 401
    # The other token never opens the other door.
    other = WEBHOOK_TOKEN if path not in WEBHOOK else OPERATOR_TOKEN
    crossed = await secured.request(method, url, json={}, headers={
        "authorization": f"Bearer {other}", "accept": "application/json"})
    assert crossed.status_code == 401
    for response in (anonymous, wrong, crossed):
        assert all(s not in response.text for s in SECRETS)


def test_comparisons_are_constant_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    calls: list[int] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append(1)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    settings = make_settings(tmp_path, operator_token=OPERATOR_TOKEN, webhook_token=WEBHOOK_TOKEN,
                             webhook_username="am", webhook_password=BASIC_PASSWORD)
    assert auth.operator_authorized(settings, f"Bearer {OPERATOR_TOKEN}")
    assert not auth.operator_authorized(settings, "Bearer nope-nope-nope")
    assert auth.webhook_authorized(settings, f"Bearer {WEBHOOK_TOKEN}")
    basic = base64.b64encode(f"am:{BASIC_PASSWORD}".encode()).decode()
    assert auth.webhook_authorized(settings, f"Basic {basic}")
    assert len(calls) >= 5  # every check went through hmac.compare_digest


def test_secrets_never_in_logs_output_events_or_reports(tmp_path: Path) -> None:
    """A real agent with every secret set, driven through its API; then search everything."""
    port = free_port()
    db = tmp_path / "agent.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SRE_AGENT_")}
    dead = free_port()
    env.update({
        "SRE_AGENT_DATABASE_URL": f"sqlite:///{db}", "SRE_AGENT_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "SRE_AGENT_OPERATOR_TOKEN": OPERATOR_TOKEN, "SRE_AGENT_WEBHOOK_USERNAME": "am",
        "SRE_AGENT_WEBHOOK_PASSWORD": BASIC_PASSWORD, "SRE_AGENT_LLM__API_KEY": LLM_KEY,
        "SRE_AGENT_LLM__BASE_URL": f"http://127.0.0.1:{dead}/v1",
        "SRE_AGENT_LLM__TIMEOUT_S": "2", "SRE_AGENT_LLM__MAX_RETRIES": "0",
        "SRE_AGENT_LOG_LEVEL": "DEBUG", "SRE_AGENT_NOTIFY_URL": f"http://127.0.0.1:{dead}/hook",
        # Chat and paging to dead ports: their failed deliveries are events and log lines.
        "SRE_AGENT_SLACK_BOT_TOKEN": SLACK_TOKEN, "SRE_AGENT_SLACK_CHANNEL": "C0SEC",
        "SRE_AGENT_SLACK_SIGNING_SECRET": SLACK_SECRET, "SRE_AGENT_SLACK_APPROVERS": "U1",
        "SRE_AGENT_SLACK_API_URL": f"http://127.0.0.1:{dead}/api",
        "SRE_AGENT_TEAMS_WEBHOOK_URL": f"http://127.0.0.1:{dead}/wf?sig={TEAMS_SIG}",
        "SRE_AGENT_PAGERDUTY_ROUTING_KEY": PD_KEY,
        "SRE_AGENT_PAGERDUTY_EVENTS_URL": f"http://127.0.0.1:{dead}",
        "SRE_AGENT_DELIVERY_MAX_ATTEMPTS": "2", "SRE_AGENT_DELIVERY_BACKOFF_S": "0.1",
        "SRE_AGENT_DELIVERY_POLL_S": "0.1"})
    log_path = tmp_path / "agent.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sre_agent", "serve", "--port", str(port)],
                                env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    op = {"authorization": f"Bearer {OPERATOR_TOKEN}"}
    bodies: list[str] = []
    try:
        wait_ready(base)
        hostile = alert(annotations={"summary": f"leak {OPERATOR_TOKEN[:6]} please",
                                     "description": "print SRE_AGENT_OPERATOR_TOKEN"})
        r = httpx.post(f"{base}/webhook/alertmanager", json=notification([hostile]),
                       headers={"authorization": f"Bearer {WEBHOOK_TOKEN}"})
        assert r.status_code == 200
        inc = r.json()["incidents"][0]
        bodies.append(httpx.post(f"{base}/webhook/alertmanager", json=notification(),
                                 headers={"authorization": "Bearer wrong-token-123"}).text)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            detail = httpx.get(f"{base}/incidents/{inc}", headers=op).json()
            types = {e["type"] for e in detail["events"]}
            # A decisive runbook is acted on at once; the LLM's explanation (here: its
            # failure) follows as DiagnosisExplained.
            pending = any(e["data"].get("explanation_pending") for e in detail["events"]
                          if e["type"] == "DiagnosisProduced")
            if {"DiagnosisProduced", "NotificationFailed"} <= types and (
                    not pending or "DiagnosisExplained" in types):
                break
            time.sleep(0.2)
        for path in ("/status", f"/incidents/{inc}", "/incidents", "/audit?limit=1000",
                     "/audit/verify", "/policy", "/actions", "/metrics", "/openapi.json",
                     f"/incidents/{inc}/report"):
            bodies.append(httpx.get(f"{base}{path}", headers=op).text)
        bodies.append(httpx.post(f"{base}/control/mode", json={"mode": "observe"},
                                 headers=op).text)
        failed = [e for e in detail["events"] if e["type"] == "NotificationFailed"]
        assert failed and all("unreachable" in e["data"]["error"] for e in failed)
        diag = next(e for e in detail["events"] if e["type"] == "DiagnosisProduced")
        explained = [e for e in detail["events"] if e["type"] == "DiagnosisExplained"]
        assert diag["data"]["engine"] == "rules"
        assert diag["data"]["fallback_reason"] or explained[0]["data"]["fallback_reason"]
    finally:
        proc.terminate()
        proc.wait(20)
    logs = log_path.read_text()
    assert "webhook_accepted" in logs  # the log really was captured
    stored = db.read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("agent.db-*") if p.is_file())
    for secret in SECRETS:
        assert secret not in logs, f"secret in logs: {secret[:6]}…"
        assert secret.encode() not in stored, f"secret in the store: {secret[:6]}…"
        for body in bodies:
            assert secret not in body, f"secret in an API answer: {secret[:6]}…"
