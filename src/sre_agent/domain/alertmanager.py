"""The Alertmanager webhook payload (version 4), parsed strictly, unknown fields ignored."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Alertmanager sends this for alerts that are still firing.
ZERO_TIME = "0001-01-01T00:00:00Z"


class AlertStatus:
    FIRING = "firing"
    RESOLVED = "resolved"


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime = Field(alias="startsAt")
    ends_at: str = Field(default=ZERO_TIME, alias="endsAt")
    generator_url: str = Field(default="", alias="generatorURL")
    # An identity, compared as stored: no control characters (NUL among them, which PostgreSQL
    # cannot store). Alertmanager sends 16 hex digits.
    fingerprint: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")

    @field_validator("starts_at", mode="before")
    @classmethod
    def _rfc3339_only(cls, value: object) -> object:
        # Lax mode would read a number as a Unix time; Alertmanager always sends RFC 3339.
        if not isinstance(value, str):
            raise ValueError("startsAt must be an RFC 3339 timestamp string")
        return value

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    @cached_property
    def starts_at_key(self) -> str:
        """startsAt normalised to a stable UTC string: the dedupe key with the fingerprint."""
        ts = self.starts_at if self.starts_at.tzinfo else self.starts_at.replace(tzinfo=UTC)
        return ts.astimezone(UTC).isoformat(timespec="microseconds")


class WebhookNotification(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    version: Literal["4"]
    group_key: str = Field(alias="groupKey", min_length=1)
    status: Literal["firing", "resolved"]
    receiver: str = ""
    group_labels: dict[str, str] = Field(default_factory=dict, alias="groupLabels")
    common_labels: dict[str, str] = Field(default_factory=dict, alias="commonLabels")
    common_annotations: dict[str, str] = Field(default_factory=dict, alias="commonAnnotations")
    external_url: str = Field(default="", alias="externalURL")
    truncated_alerts: int = Field(default=0, ge=0, alias="truncatedAlerts")
    alerts: list[WebhookAlert]

    @field_validator("truncated_alerts", mode="before")
    @classmethod
    def _json_integer(cls, value: object) -> object:
        # A JSON integer (1 or 1.0), never a boolean or a numeric string.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError("truncatedAlerts must be an integer")
        if isinstance(value, float) and not value.is_integer():
            raise ValueError("truncatedAlerts must be an integer")
        return int(value)


def expression_from_generator_url(url: str) -> str | None:
    """The alert rule's PromQL, from Prometheus' generatorURL (``...graph?g0.expr=...``)."""
    from urllib.parse import parse_qs, urlsplit

    if not url:
        return None
    try:
        values = parse_qs(urlsplit(url).query).get("g0.expr")
    except ValueError:
        return None
    return values[0].strip() if values and values[0].strip() else None
