"""Schemathesis against the app's own /openapi.json: every operation, with and without auth.
Zero 5xx, zero responses that break the documented schema."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings

from sre_agent.api.app import create_app
from tests.conftest import make_settings
from tests.support.components import require

schemathesis: Any
try:
    import schemathesis
except ImportError:  # pragma: no cover - the dev extra installs it
    schemathesis = None

pytestmark = pytest.mark.integration
OPERATOR_TOKEN = "op-fuzz-token-123456"
WEBHOOK_TOKEN = "wh-fuzz-token-123456"
OPEN_PATHS = {"/health", "/ready", "/metrics"}

# Schemathesis loads the schema at collection time; the app gets its own SQLite file.
_TMP = tempfile.TemporaryDirectory(prefix="sre-agent-fuzz-")
APP = create_app(make_settings(Path(_TMP.name), operator_token=OPERATOR_TOKEN,
                               webhook_token=WEBHOOK_TOKEN, mode="observe"))


def _auth(case: Any) -> dict[str, str]:
    token = WEBHOOK_TOKEN if case.path.startswith("/webhook") else OPERATOR_TOKEN
    return {"Authorization": f"Bearer {token}"}


if schemathesis is not None:
    from schemathesis.specs.openapi.checks import negative_data_rejection

    # /events is an endless Server-Sent Events stream: tested on its own, not fuzzed here.
    schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(path="/events")

    @schema.parametrize()
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def test_fuzz_with_auth(case: Any) -> None:
        # Query strings carry text whatever the declared type, so "negative" query values
        # (a number for a string parameter) are indistinguishable from valid ones; bodies are
        # still checked for schema-violating data being accepted.
        excluded = [negative_data_rejection] if case.body is None or case.method == "GET" else []
        case.call_and_validate(headers=_auth(case), excluded_checks=excluded)

    @schema.parametrize()
    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
    def test_fuzz_without_auth(case: Any) -> None:
        response = case.call()
        assert response.status_code < 500
        if case.method.upper() != case.operation.method.upper():
            # schemathesis probes undocumented methods: refused, by auth first where it applies
            assert response.status_code in (401, 405)
        elif case.path not in OPEN_PATHS:
            assert response.status_code == 401, (case.method, case.path, response.status_code)
else:  # pragma: no cover
    def test_schemathesis_available() -> None:
        require(False, "schemathesis not installed")
