"""Evidence: what read-only collectors found, each with an explicit status."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class EvidenceStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    NO_DATA = "no_data"


class Evidence(BaseModel):
    source: str = Field(description="collector: prometheus | docker | http_probe | target")
    name: str = Field(description="what was looked at, e.g. a query or a container name")
    status: EvidenceStatus
    data: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    duration_ms: float = 0.0

    def is_container(self, name: str) -> bool:
        """Docker evidence about container ``name`` (a container's state names it in data)."""
        return self.source == "docker" and self.data.get("container", self.name) == name


def container_state(evidence: list[Evidence], name: str) -> Evidence | None:
    """The Docker evidence that read container ``name``'s state successfully, or None."""
    return next((ev for ev in evidence
                 if ev.is_container(name) and ev.status is EvidenceStatus.OK), None)


class ResolvedTarget(BaseModel):
    """A container an alert is about, and how we know."""

    name: str
    via: str = Field(description="label:container | docker_label:sre-agent.job | port | ...")
    verified: bool = Field(description="False when Docker could not confirm it exists")
    labels: dict[str, str] = Field(default_factory=dict)
    health_url: str | None = None


class AlertContext(BaseModel):
    """The slice of an incident that analysis sees. Alert text inside is untrusted data."""

    incident_id: str
    group_key: str
    alerts: list[dict[str, Any]] = Field(description="labels, annotations, status, "
                                                     "generator_url, starts_at")
    common_labels: dict[str, str] = Field(default_factory=dict)
    extra_queries: dict[str, str] = Field(
        default_factory=dict, description="name -> PromQL that candidate runbooks ask for, "
                                          "already filled from labels")

    @property
    def alertnames(self) -> list[str]:
        return sorted({str(a.get("labels", {}).get("alertname", "")) for a in self.alerts})

    @property
    def labels(self) -> dict[str, str]:
        """Common labels, or the first alert's when there are none in common."""
        if self.common_labels:
            return self.common_labels
        return dict(self.alerts[0].get("labels", {})) if self.alerts else {}
