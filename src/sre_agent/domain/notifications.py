"""What chat and paging messages say about an incident, and what was delivered, from the log.

``incident_card`` folds an incident's events into a vendor-neutral view (title, severity,
diagnosis, evidence lines, the actions and where each stands); the Slack, Teams and PagerDuty
adapters only format it. ``delivered`` folds the ``Notification*`` events into what each
destination already has, so the delivery worker sends only what changed, and the dashboard
links each incident to its chat message. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sre_agent.domain.actions import STATUS_BY_EVENT, ActionStatus, action_transition
from sre_agent.domain.diagnosis import CONTAINER_ACTIONS
from sre_agent.domain.events import DELIVERY_TYPES, EventType, StoredEvent
from sre_agent.domain.events import payloads as ev

MAX_EVIDENCE_LINES = 6
MAX_LINE = 200

# Where each action stands, as a person reads it in a chat message.
STATUS_TEXT: dict[str, str] = {
    ActionStatus.PROPOSED: "proposed",
    ActionStatus.PENDING_APPROVAL: "waiting for approval",
    ActionStatus.APPROVED: "approved, about to run",
    ActionStatus.REJECTED: "rejected",
    ActionStatus.EXPIRED: "expired without a decision",
    ActionStatus.BLOCKED: "blocked by the safety gate",
    ActionStatus.DRY_RUN: "dry run: not executed",
    ActionStatus.RUNNING: "running",
    ActionStatus.SUCCEEDED: "done, being verified",
    ActionStatus.FAILED: "failed",
    ActionStatus.VERIFIED: "verified: the target recovered",
    ActionStatus.VERIFICATION_FAILED: "verification failed: the target did not recover",
    ActionStatus.VERIFICATION_INCONCLUSIVE: "verification inconclusive",
}
GOOD = frozenset({ActionStatus.VERIFIED, ActionStatus.SUCCEEDED})
BAD = frozenset({ActionStatus.FAILED, ActionStatus.VERIFICATION_FAILED, ActionStatus.BLOCKED,
                 ActionStatus.REJECTED, ActionStatus.EXPIRED})


def clip(text: object, limit: int = MAX_LINE) -> str:
    value = " ".join(str(text or "").split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


@dataclass
class ActionLine:
    id: str
    kind: str
    target: str | None
    status: ActionStatus
    reason: str = ""
    decided_by: str | None = None
    error: str = ""
    expires_ts: float | None = None

    @property
    def pending(self) -> bool:
        return self.status == ActionStatus.PENDING_APPROVAL

    @property
    def label(self) -> str:
        return f"{self.kind} {self.target}" if self.target else self.kind

    def status_text(self, who: Callable[[str], str] = str) -> str:
        """Where it stands, e.g. ``verified: the target recovered (approved by ann)``;
        ``who`` formats the operator's name (a Slack mention, say)."""
        text = STATUS_TEXT.get(self.status, str(self.status))
        if self.status == ActionStatus.SUCCEEDED and self.kind not in CONTAINER_ACTIONS:
            text = "done"  # a notification or a silence: nothing to verify
        if self.decided_by and self.status in (ActionStatus.APPROVED, ActionStatus.REJECTED,
                                               ActionStatus.RUNNING, ActionStatus.SUCCEEDED,
                                               ActionStatus.FAILED, ActionStatus.VERIFIED,
                                               ActionStatus.VERIFICATION_FAILED,
                                               ActionStatus.VERIFICATION_INCONCLUSIVE):
            verb = "rejected" if self.status == ActionStatus.REJECTED else "approved"
            text += f" ({verb} by {who(self.decided_by)})"
        if self.error:
            text += f": {self.error}"
        return text


@dataclass
class IncidentCard:
    """Everything a chat or paging message shows about one incident."""

    incident_id: str
    title: str
    severity: str
    status: str  # open | escalated | resolved
    labels: dict[str, str]
    incident_url: str
    approvals_url: str
    upto_seq: int
    summary: str = ""
    cause: str = ""
    category: str = ""
    confidence: float | None = None
    engine: str = ""
    evidence: list[str] = field(default_factory=list)
    actions: list[ActionLine] = field(default_factory=list)
    diagnosed: bool = False
    escalated: bool = False
    escalation_reason: str = ""
    resolved: bool = False

    @property
    def pending(self) -> list[ActionLine]:
        return [a for a in self.actions if a.pending]

    @property
    def route_labels(self) -> dict[str, str]:
        """What routing matchers see: the common labels and the incident's severity."""
        return {**self.labels, "severity": self.severity}


def _evidence_line(item: Mapping[str, Any]) -> str:
    source, name, status = item.get("source", "?"), item.get("name", ""), item.get("status")
    if status != "ok":
        why = item.get("error") or status
        return clip(f"{source} {name}: {why}")
    data = item.get("data") or {}
    facts = []
    for key in ("state", "status", "health", "restart_count", "exit_code", "value", "result",
                "status_code"):
        if key in data and not isinstance(data[key], dict | list):
            facts.append(f"{key}={data[key]}")
    if not facts and isinstance(data.get("result"), list):
        facts.append(f"{len(data['result'])} series")
    return clip(f"{source} {name}: " + (", ".join(facts[:4]) or "ok"))


def incident_card(incident: Mapping[str, Any], events: Iterable[StoredEvent],
                  base_url: str) -> IncidentCard:
    """Fold the incident's log into what its messages show. ``base_url``: the dashboard."""
    iid = str(incident["id"])
    base = base_url.rstrip("/")
    card = IncidentCard(
        incident_id=iid, title=clip(incident.get("title") or iid, 150),
        severity=str(incident.get("severity") or "none"), status=str(incident.get("status")),
        labels={}, incident_url=f"{base}/incidents/{iid}",
        approvals_url=f"{base}/status#approvals", upto_seq=0)
    actions: dict[str, ActionLine] = {}
    for e in events:
        p = e.payload
        if isinstance(p, ev.NotificationEvent):
            continue
        card.upto_seq = max(card.upto_seq, e.seq)
        match p:
            case ev.IncidentOpened():
                card.labels = {str(k): clip(v, 100) for k, v in p.common_labels.items()}
            case ev.DiagnosisProduced():
                card.diagnosed = True
                card.summary = clip(p.summary, 500)
                card.cause = clip(e.data.get("probable_cause", ""), 500)
                card.category, card.confidence, card.engine = p.category, p.confidence, p.engine
            case ev.DiagnosisExplained():  # the LLM's text, after a decisive runbook's actions
                if p.summary:
                    card.summary, card.cause = clip(p.summary, 500), clip(p.probable_cause, 500)
            case ev.EvidenceCollected():
                card.evidence = [_evidence_line(i) for i in p.evidence[:MAX_EVIDENCE_LINES]]
            case ev.IncidentEscalated():
                card.escalated, card.escalation_reason = True, clip(p.reason)
            case ev.IncidentResolved():
                card.resolved = True
            case ev.ActionProposed():
                actions[p.action_id] = ActionLine(p.action_id, p.kind, p.target,
                                                  ActionStatus.PROPOSED, clip(p.reason))
        step = action_transition(e)
        line = actions.get(step.action_id) if step is not None else None
        if step is None or line is None:
            continue
        line.status = step.status
        if step.decided_by:
            line.decided_by = step.decided_by.removeprefix("operator:")
        if isinstance(p, ev.ActionAwaitingApproval):
            line.expires_ts = p.expires_ts
        result = step.result or step.verification
        line.error = clip((result or {}).get("error") or "", 150) if result else line.error
    card.actions = list(actions.values())
    if card.resolved:
        card.status = "resolved"
    return card


# What ``incident_card`` and ``delivered`` read: everything but the alerts themselves (a
# 5,000-alert incident's card is read without its 5,000 AlertReceived events).
CARD_TYPES: tuple[str, ...] = tuple(sorted(
    {EventType.INCIDENT_OPENED, EventType.DIAGNOSIS_PRODUCED, EventType.DIAGNOSIS_EXPLAINED,
     EventType.EVIDENCE_COLLECTED,
     EventType.INCIDENT_ESCALATED, EventType.INCIDENT_RESOLVED, *STATUS_BY_EVENT,
     *DELIVERY_TYPES}))


@dataclass(frozen=True)
class Delivered:
    """The last successful delivery of one message to one destination."""

    destination: str
    key: str
    digest: str
    channel: str = ""
    ts: str = ""
    link: str = ""


def delivered(events: Iterable[StoredEvent]) -> dict[tuple[str, str], Delivered]:
    """(destination, key) -> its last delivery; a message's channel, ts and link stay those of
    its first post (an update keeps them)."""
    out: dict[tuple[str, str], Delivered] = {}
    for e in events:
        p = e.payload
        if not isinstance(p, ev.NotificationDelivered):
            continue
        before = out.get((p.destination, p.key))
        first = before or Delivered(p.destination, p.key, "")
        out[(p.destination, p.key)] = Delivered(
            p.destination, p.key, p.digest, channel=p.channel or first.channel,
            ts=p.ts or first.ts, link=p.link or first.link)
    return out


def chat_links(events: Iterable[StoredEvent]) -> dict[str, str]:
    """destination -> a link to the incident's chat message, for the dashboard (http(s)
    links only: the link came from a chat service's answer)."""
    return {d.destination: d.link for d in delivered(events).values()
            if d.link.startswith(("https://", "http://"))}


@dataclass(frozen=True)
class Message:
    """One message a destination wants delivered: ``key`` names it (one incident message
    updated in place, or one post per milestone), ``op`` says what to do, ``body`` is the
    vendor payload without credentials, ``digest`` identifies the content."""

    key: str
    op: str
    body: dict[str, Any]
    digest: str


@dataclass(frozen=True)
class Sent:
    """What one delivery attempt came to. ``retryable``: a 5xx, a 429 or no answer at all;
    ``retry_after_s``: the receiver's ``Retry-After``. Errors never carry a secret."""

    ok: bool
    status_code: int | None = None
    error: str = ""
    retryable: bool = False
    retry_after_s: float | None = None
    channel: str = ""
    ts: str = ""
    link: str = ""


def digest_of(body: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":"),
                                     ensure_ascii=False).encode("utf-8")).hexdigest()[:32]


def milestones(card: IncidentCard, have: Iterable[str]) -> list[str]:
    """For destinations that cannot update a message (webhooks): the posts still due, each
    sent once: ``incident`` once diagnosed (or waiting for someone), ``approval:ID`` per
    approval request, ``resolved`` once resolved (only after the incident was posted)."""
    done = set(have)
    due: list[str] = []
    if "incident" not in done and (card.diagnosed or card.pending) and not card.resolved:
        due.append("incident")
    due += [f"approval:{a.id}" for a in card.pending if f"approval:{a.id}" not in done]
    if card.resolved and "resolved" not in done and "incident" in done:
        due.append("resolved")
    return due
