"""A real agent served by uvicorn in a thread, and Debian's Chromium driven by Playwright.

The agent runs on a real socket (so Server-Sent Events stream as they do in production) with
fake action backends, so approvals and executions happen without Docker.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from sre_agent.api.app import create_app
from sre_agent.api.routes.events import close_streams
from sre_agent.bootstrap import Fakes, Services, build_services
from sre_agent.domain.diagnosis import ActionKind, Category, Diagnosis, ProposedAction
from sre_agent.domain.evidence import (
    AlertContext,
    Evidence,
    EvidenceStatus,
    ResolvedTarget,
)
from tests.conftest import make_settings
from tests.support.components import free_port, require, require_binary
from tests.support.fakes import MANAGED, FakeBackend, FakeVerifier

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
OPERATOR_TOKEN = "operator-secret-token-1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class LabelResolver:
    """Resolves the container named by the alert's ``container`` label (``web`` by default)."""

    async def resolve(self, ctx: AlertContext) -> tuple[list[ResolvedTarget], Evidence]:
        names = sorted({str(a.get("labels", {}).get("container") or "web") for a in ctx.alerts})
        targets = [ResolvedTarget(name=n, via="label:container", verified=True, labels=MANAGED)
                   for n in names]
        return targets, Evidence(source="target", name="resolution", status=EvidenceStatus.OK,
                                 data={"targets": names})


class DemoAnalyzer:
    """Proposes restarting every resolved target, with a readable diagnosis."""

    name = "demo"

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        alert = ctx.alertnames[0] if ctx.alertnames else "alert"
        where = ", ".join(t.name for t in targets) or "?"
        return Diagnosis(
            summary=f"{alert}: container {where} stopped answering its health check",
            probable_cause="the process hung after a memory spike",
            category=Category.AVAILABILITY, confidence=0.86, runbook="target-down",
            evidence=[f"container {where} health: unhealthy for 2m",
                      f'up{{services="{where}"}} == 0 for 3 scrapes'],
            proposed_actions=[ProposedAction(kind=ActionKind.RESTART_CONTAINER, target=t.name,
                                             reason="restart clears a hung process")
                              for t in targets])


def fake_agent_app(tmp_path: Path, *, backend: FakeBackend | None = None,
                   **overrides: Any) -> tuple[FastAPI, Services, FakeBackend]:
    """An agent on ``tmp_path/agent.db`` whose analysis proposes restarting ``web``."""
    settings = make_settings(tmp_path, **{"mode": "approval", **overrides})
    backend = backend or FakeBackend()
    backends: dict[ActionKind, Any] = {ActionKind.RESTART_CONTAINER: backend,
                                       ActionKind.START_CONTAINER: backend}
    if settings.alertmanager_url:  # silences go to that (real) Alertmanager
        from sre_agent.actions.silence import AlertmanagerSilenceBackend

        backends[ActionKind.SILENCE_ALERT] = AlertmanagerSilenceBackend(settings.alertmanager_url)
    container = build_services(settings, backends=backends, fakes=Fakes(
        analyzer=DemoAnalyzer(), resolver=LabelResolver(), sources=[], verifier=FakeVerifier()))
    return create_app(settings, services=container), container, backend


class AgentServer:
    """uvicorn serving an app on 127.0.0.1 in a background thread."""

    def __init__(self, app: FastAPI, port: int | None = None) -> None:
        self.app = app
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
            lifespan="on", timeout_graceful_shutdown=10))
        self.thread = threading.Thread(target=self.server.run, name=f"agent-{self.port}",
                                       daemon=True)

    def start(self) -> AgentServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"agent did not start on port {self.port}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        close_streams(self.app)  # open event streams end within one poll interval
        self.server.should_exit = True
        self.thread.join(timeout=30)
        if self.thread.is_alive():
            raise RuntimeError("agent server did not stop")


@contextmanager
def serve(app: FastAPI, port: int | None = None) -> Iterator[AgentServer]:
    server = AgentServer(app, port).start()
    try:
        yield server
    finally:
        server.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, interval: float = 0.1,
             what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def operator_client(base_url: str, token: str | None = OPERATOR_TOKEN) -> httpx.Client:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=base_url, headers=headers, timeout=10)


def require_chromium() -> str:
    """The Debian Chromium binary and the Playwright package, or skip (fail under CI=true)."""
    path = require_binary("chromium")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        require(False, "playwright is not installed (pip install playwright)")
    return path


def launch_chromium(playwright: Any) -> Any:
    """Headless Debian Chromium; never a browser that Playwright downloads."""
    return playwright.chromium.launch(executable_path=require_chromium(), headless=True,
                                      args=CHROMIUM_ARGS)
