"""Parsing the Alertmanager version-4 payload."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sre_agent.domain.alertmanager import WebhookNotification, expression_from_generator_url
from tests.support.payloads import alert, notification


def test_real_payload_parses_and_ignores_unknown_fields() -> None:
    payload = notification()
    payload["somethingNew"] = {"from": "alertmanager 0.28"}
    payload["alerts"][0]["extra"] = 1
    n = WebhookNotification.model_validate(payload)
    assert n.group_key == '{}:{alertname="TargetDown"}'
    assert n.alerts[0].alertname == "TargetDown"
    assert n.alerts[0].ends_at == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(("field", "value"), [
    ("version", "3"), ("groupKey", ""), ("status", "pending"), ("alerts", "nope"),
])
def test_bad_top_level_fields_are_named(field: str, value: object) -> None:
    payload = notification()
    payload[field] = value
    with pytest.raises(ValidationError) as exc:
        WebhookNotification.model_validate(payload)
    assert field in str(exc.value)


def test_alert_without_fingerprint_is_rejected() -> None:
    payload = notification()
    del payload["alerts"][0]["fingerprint"]
    with pytest.raises(ValidationError, match="fingerprint"):
        WebhookNotification.model_validate(payload)


def test_expression_from_generator_url() -> None:
    url = alert(expr='rate(http_requests_total{code=~"5.."}[5m]) > 0.1')["generatorURL"]
    assert expression_from_generator_url(url) == 'rate(http_requests_total{code=~"5.."}[5m]) > 0.1'
    assert expression_from_generator_url("") is None
    assert expression_from_generator_url("http://x/graph") is None


@pytest.mark.parametrize("fingerprint", ["ab\x00cd", "ab\ncd", "x\x85y"])
def test_a_fingerprint_with_control_characters_is_refused(fingerprint: str) -> None:
    """A fingerprint is an identity, compared as stored: NUL (which PostgreSQL cannot store and
    the projections replace) once made a redelivery look new and fail with 503."""
    from pydantic import ValidationError

    from sre_agent.domain.alertmanager import WebhookNotification
    from tests.support.payloads import alert, notification

    with pytest.raises(ValidationError, match="fingerprint"):
        WebhookNotification.model_validate(notification([alert(fingerprint=fingerprint)]))
