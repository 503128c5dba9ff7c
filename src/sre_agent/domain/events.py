"""Events: the append-only log is the source of truth; everything else is a projection.

Every record is hash-chained: ``hash = sha256(canonical_json(record) + prev_hash)``, so a
changed, removed or reordered record breaks the chain from that point on.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

GENESIS_HASH = "0" * 64


class EventType(StrEnum):
    INCIDENT_OPENED = "IncidentOpened"
    ALERT_RECEIVED = "AlertReceived"
    ALERT_RESOLVED = "AlertResolved"
    INCIDENT_RESOLVED = "IncidentResolved"
    INCIDENT_ESCALATED = "IncidentEscalated"
    EVIDENCE_COLLECTED = "EvidenceCollected"
    DIAGNOSIS_PRODUCED = "DiagnosisProduced"
    ACTION_PROPOSED = "ActionProposed"
    ACTION_BLOCKED = "ActionBlocked"
    ACTION_AWAITING_APPROVAL = "ActionAwaitingApproval"
    ACTION_DRY_RUN = "ActionDryRun"
    ACTION_EXPIRED = "ActionExpired"
    ACTION_APPROVED = "ActionApproved"
    ACTION_REJECTED = "ActionRejected"
    ACTION_STARTED = "ActionStarted"
    ACTION_SUCCEEDED = "ActionSucceeded"
    ACTION_FAILED = "ActionFailed"
    VERIFICATION_PASSED = "VerificationPassed"
    VERIFICATION_FAILED = "VerificationFailed"
    BREAKER_TRIPPED = "BreakerTripped"
    BREAKER_RESET = "BreakerReset"
    MODE_CHANGED = "ModeChanged"
    PAUSED = "Paused"
    RESUMED = "Resumed"


class Actor:
    """Who caused an event. Operators appear as ``operator:NAME``."""

    ALERTMANAGER = "alertmanager"
    AGENT = "agent"
    SYSTEM = "system"

    @staticmethod
    def operator(name: str) -> str:
        return f"operator:{name}"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended: the store assigns seq, timestamps and hashes."""

    type: EventType
    actor: str
    incident_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    incident_id: str | None
    type: str
    at: str
    actor: str
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "incident_id": self.incident_id,
            "type": self.type,
            "at": self.at,
            "actor": self.actor,
            "data": self.data,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(
    *, seq: int, incident_id: str | None, type: str, at: str, actor: str,
    data: dict[str, Any], prev_hash: str,
) -> str:
    body = canonical_json(
        {"seq": seq, "incident_id": incident_id, "type": type, "at": at, "actor": actor,
         "data": data}
    )
    return hashlib.sha256((body + prev_hash).encode("utf-8")).hexdigest()


@lru_cache(maxsize=4096)
def _enc(value: str | None) -> str:
    # The same few actors, types, timestamps and incident ids recur across a batch.
    return json.dumps(value, ensure_ascii=False)


def event_hash_from_text(
    *, seq: int, incident_id: str | None, type: str, at: str, actor: str, data_text: str,
    prev_hash: str,
) -> str:
    """``event_hash`` when the canonical JSON of ``data`` is already at hand (the append path
    encodes it once for storage): the same bytes, built without encoding ``data`` again."""
    body = (f'{{"actor":{_enc(actor)},"at":{_enc(at)},"data":{data_text},'
            f'"incident_id":{_enc(incident_id)},"seq":{seq},"type":{_enc(type)}}}')
    return hashlib.sha256((body + prev_hash).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


def verify_chain(events: list[StoredEvent], prev_hash: str = GENESIS_HASH,
                 expected_seq: int | None = None) -> ChainBreak | None:
    """Walk a run of events; return the first break, or None when the run is intact."""
    for ev in events:
        if expected_seq is not None and ev.seq != expected_seq:
            return ChainBreak(expected_seq, f"missing event: expected seq {expected_seq}, "
                              f"found {ev.seq}")
        if ev.prev_hash != prev_hash:
            return ChainBreak(ev.seq, "prev_hash does not match the previous record's hash")
        recomputed = event_hash(seq=ev.seq, incident_id=ev.incident_id, type=ev.type, at=ev.at,
                                actor=ev.actor, data=ev.data, prev_hash=ev.prev_hash)
        if recomputed != ev.hash:
            return ChainBreak(ev.seq, "hash does not match the record's content")
        prev_hash = ev.hash
        expected_seq = ev.seq + 1
    return None
