"""Fixtures of the end-to-end tests: the demo stack (real Prometheus, Alertmanager, Docker and
the agent as a subprocess) started per test, stopped afterwards by PID and container removal.

Missing components skip the tests locally and fail them under CI=true.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from sre_agent.demo.images import ImageError, ensure_target_image, find_repo_root
from sre_agent.demo.stack import DemoStack, StackOptions
from tests.support.components import require, require_binary, require_docker
from tests.support.docker_helpers import docker_client

HEALTHY_TIMEOUT_S = 90.0


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]
                              ) -> Generator[None, Any, Any]:
    """Remember each phase's report on the item, so fixtures know whether the test failed."""
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def target_image() -> str:
    """The demo target image, built from Dockerfile.target if missing or out of date."""
    require_docker()
    require_binary("prometheus")
    require_binary("prometheus-alertmanager")
    client = docker_client()
    try:
        tag, _built = ensure_target_image(client, find_repo_root(Path(__file__).parent))
    except ImageError as exc:
        require(False, f"cannot build the demo target image: {exc}")
        raise
    finally:
        client.close()
    return tag


@pytest.fixture
def make_stack(target_image: str, tmp_path: Path, request: pytest.FixtureRequest
               ) -> Iterator[Callable[..., DemoStack]]:
    """``make_stack(**StackOptions fields)``: a started, healthy stack (work folder under
    tmp_path, its own target job name). Every stack is stopped afterwards; on failure the
    components' log tails are printed."""
    stacks: list[DemoStack] = []

    def factory(**options: Any) -> DemoStack:
        # A job name of its own: another container on this Docker daemon labelled
        # sre-agent.job=target (another test's) can never be taken for this stack's target.
        options.setdefault("target_job", f"target-e2e-{secrets.token_hex(3)}")
        stack = DemoStack(StackOptions(work_dir=tmp_path / f"stack-{len(stacks)}",
                                       image=target_image, build_image=False, **options))
        stacks.append(stack)
        stack.start()
        stack.wait_healthy(HEALTHY_TIMEOUT_S)
        return stack

    yield factory
    failed = any(getattr(getattr(request.node, f"report_{when}", None), "failed", False)
                 for when in ("setup", "call"))
    for stack in stacks:
        if failed:
            for proc in stack.processes():
                print(f"\n--- {proc.name} log tail ({proc.log_path}) ---\n"
                      f"{proc.log_tail(40)}")
        stack.stop()
