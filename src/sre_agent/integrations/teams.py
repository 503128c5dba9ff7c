"""Microsoft Teams: an Adaptive Card posted to a Workflows webhook ("When a Teams webhook
request is received" -> post card in a channel or chat).

A Workflows webhook cannot call back and a posted card cannot be updated through it, so each
milestone (``milestones``: the incident, each approval request, the resolution) is one card,
with a link to the incident and to the approval on the dashboard. The webhook URL carries its
own signature (``sig=``): it is a secret and never leaves this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sre_agent.domain.notifications import (
    Delivered,
    IncidentCard,
    Message,
    digest_of,
    milestones,
)
from sre_agent.domain.routing import Destination
from sre_agent.integrations.http import WebhookPoster
from sre_agent.shared.redact import redact

SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
SEVERITY_COLOR = {"critical": "Attention", "error": "Attention", "warning": "Warning",
                  "info": "Accent"}


def _block(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": redact(text)[:2000], "wrap": True, **extra}


def card_body(card: IncidentCard, key: str) -> list[dict[str, Any]]:
    """The card's body for one milestone. Text is plain (``TextBlock`` renders a subset of
    Markdown; alert text is data, so links in it are shown, not followed)."""
    heading = {"incident": card.title, "resolved": f"Resolved: {card.title}"}.get(
        key, f"Approval needed: {card.title}")
    body: list[dict[str, Any]] = [
        _block(heading, size="Large", weight="Bolder",
               color="Good" if key == "resolved" else SEVERITY_COLOR.get(card.severity,
                                                                          "Default")),
        {"type": "FactSet", "facts": [
            {"title": "Severity", "value": redact(card.severity)},
            {"title": "Status", "value": redact(card.status)},
            {"title": "Incident", "value": card.incident_id}]}]
    if card.diagnosed:
        body.append(_block(f"Diagnosis: {card.summary or '—'}"))
        if card.cause:
            body.append(_block(f"Probable cause: {card.cause}", isSubtle=True))
    if key == "incident" and card.evidence:
        body.append({"type": "Container", "items": [
            _block(line, isSubtle=True, size="Small") for line in card.evidence]})
    if card.actions:
        body.append({"type": "FactSet", "facts": [
            {"title": redact(a.label)[:100], "value": redact(a.status_text())[:300]}
            for a in card.actions[:10]]})
    return body


def adaptive_card(card: IncidentCard, key: str) -> dict[str, Any]:
    actions = [{"type": "Action.OpenUrl", "title": "Open incident", "url": card.incident_url}]
    if key.startswith("approval:") or (key == "incident" and card.pending):
        actions.append({"type": "Action.OpenUrl", "title": "Approve on the dashboard",
                        "url": card.approvals_url})
    content = {"$schema": SCHEMA, "type": "AdaptiveCard", "version": "1.4",
               "body": card_body(card, key), "actions": actions}
    return {"type": "message", "attachments": [
        {"contentType": CARD_TYPE, "contentUrl": None, "content": content}]}


class TeamsWorkflow(WebhookPoster):
    """Posts Adaptive Cards to a Teams Workflows webhook URL. ``ChatDestination``."""

    name = Destination.TEAMS

    peer = "Teams workflow"

    def messages(self, card: IncidentCard, have: Mapping[str, Delivered]) -> list[Message]:
        out = []
        for key in milestones(card, have):
            body = adaptive_card(card, key)
            out.append(Message(key, "post", body, digest_of(body)))
        return out
