"""PagerDuty Events API v2: ``trigger`` when an incident escalates, ``resolve`` when it
resolves; ``dedup_key`` is the incident id, so a retried trigger opens no second page.

``POST {events_url}/v2/enqueue`` answers 202 ``{"status": "success", "dedup_key": ...}``;
400 is an invalid event (final), 429 and 5xx are retried. The routing key (an integration key
of a service) is a secret: it travels in the body and never leaves this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sre_agent.domain.notifications import Delivered, IncidentCard, Message, Sent, digest_of
from sre_agent.domain.routing import Destination
from sre_agent.integrations.http import Client, Scrubber, request
from sre_agent.shared.redact import redact

SEVERITIES = {"critical": "critical", "page": "critical", "p1": "critical", "error": "error",
              "high": "error", "major": "error", "p2": "error", "warning": "warning",
              "warn": "warning", "medium": "warning", "minor": "warning", "p3": "warning"}
MAX_SUMMARY = 1024


def pd_severity(severity: str) -> str:
    """The alert's severity as one of PagerDuty's four (anything unknown is ``info``)."""
    return SEVERITIES.get(severity.strip().lower(), "info")


def trigger_body(card: IncidentCard) -> dict[str, Any]:
    summary = redact(f"{card.title}: {card.summary}" if card.summary else card.title)
    details: dict[str, Any] = {
        "incident": card.incident_id, "severity": card.severity, "status": card.status,
        "diagnosis": redact(card.summary), "probable_cause": redact(card.cause),
        "category": card.category, "escalation": redact(card.escalation_reason),
        "actions": [f"{a.label}: {a.status_text()}" for a in card.actions[:10]],
        "evidence": card.evidence, "labels": {k: redact(v) for k, v in card.labels.items()}}
    return {"event_action": "trigger", "dedup_key": card.incident_id[:255],
            "payload": {"summary": summary[:MAX_SUMMARY] or card.incident_id,
                        "source": card.labels.get("instance") or card.labels.get(
                            "container") or "sre-agent",
                        "severity": pd_severity(card.severity),
                        "component": card.labels.get("container") or card.labels.get("job"),
                        "group": card.labels.get("job"), "class": card.category or None,
                        "custom_details": details},
            "links": [{"href": card.incident_url, "text": "Incident in SRE Agent"}],
            "client": "SRE Agent", "client_url": card.incident_url}


class PagerDutyEvents:
    """Pages through the Events API v2. ``ChatDestination``."""

    name = Destination.PAGERDUTY

    def __init__(self, routing_key: str, events_url: str = "https://events.pagerduty.com",
                 timeout_s: float = 10.0) -> None:
        self.routing_key = routing_key
        self.url = events_url.rstrip("/") + "/v2/enqueue"
        self.timeout_s = timeout_s
        self.client = Client(timeout_s)
        self.scrub = Scrubber([routing_key])

    def messages(self, card: IncidentCard, have: Mapping[str, Delivered]) -> list[Message]:
        out = []
        if card.escalated and "trigger" not in have and not card.resolved:
            body = trigger_body(card)
            out.append(Message("trigger", "trigger", body, digest_of(body)))
        if card.resolved and "trigger" in have and "resolve" not in have:
            body = {"event_action": "resolve", "dedup_key": card.incident_id[:255]}
            out.append(Message("resolve", "resolve", body, digest_of(body)))
        return out

    async def close(self) -> None:
        await self.client.close()

    async def send(self, message: Message, have: Delivered | None) -> Sent:
        body = {"routing_key": self.routing_key, **message.body}
        response, failed = await request(self.client, "POST", self.url,
                                         scrub=self.scrub, peer="PagerDuty", json_body=body)
        if failed is not None or response is None:
            return failed or Sent(ok=False, error="no answer")
        return Sent(ok=True, status_code=response.status_code)
