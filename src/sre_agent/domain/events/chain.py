"""The hash-chained log records: events about to be appended, stored events, the chain.

Every record is hash-chained: ``hash = sha256(canonical_json(record) + prev_hash)``, so a
changed, removed or reordered record breaks the chain from that point on.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from sre_agent.domain.events.types import EventType

if TYPE_CHECKING:
    from sre_agent.domain.events.payloads import EventPayload

GENESIS_HASH = "0" * 64


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class NewEvent:
    """An event about to be appended: the store assigns seq, timestamps and hashes."""

    type: EventType
    actor: str
    incident_id: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, payload: EventPayload, actor: str, incident_id: str | None = None) -> NewEvent:
        """The event for a typed payload: its type comes from the payload's class."""
        return cls(payload.TYPE, actor, incident_id, payload.to_data())


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

    @cached_property
    def payload(self) -> EventPayload:
        """The typed payload for this event's type (parsed once, on first use)."""
        from sre_agent.domain.events.payloads import parse_payload
        return parse_payload(self.type, self.data)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StoredEvent:
        """The inverse of :meth:`as_dict` (the JSON an API or a test hands around)."""
        return cls(seq=int(d.get("seq", 0)), incident_id=d.get("incident_id"),
                   type=event_type_of(str(d.get("type", ""))), at=str(d.get("at", "")),
                   actor=str(d.get("actor", "")), data=dict(d.get("data") or {}),
                   prev_hash=str(d.get("prev_hash", "")), hash=str(d.get("hash", "")))


def event_type_of(raw: str) -> str:
    """The EventType member for a stored type name (unknown names stay plain strings)."""
    try:
        return EventType(raw)
    except ValueError:
        return raw


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


class ChainRecord(Protocol):
    """What the chain check reads of one record: a StoredEvent (``data`` decoded), or a row
    of the log as stored (``data`` the canonical JSON text that was hashed)."""

    @property
    def seq(self) -> int: ...
    @property
    def incident_id(self) -> str | None: ...
    @property
    def type(self) -> str: ...
    @property
    def at(self) -> str: ...
    @property
    def actor(self) -> str: ...
    @property
    def data(self) -> Any: ...
    @property
    def prev_hash(self) -> str: ...
    @property
    def hash(self) -> str: ...


def record_hash_matches(ev: ChainRecord) -> bool:
    """Whether the record's hash is the hash of its content. Stored text is hashed as it is
    (no decoding: what append hashed); text that does not match is decoded and hashed in
    canonical form, so a record only ever fails when its content really differs."""
    data = ev.data
    if isinstance(data, str):
        if event_hash_from_text(seq=ev.seq, incident_id=ev.incident_id, type=ev.type,
                                at=ev.at, actor=ev.actor, data_text=data,
                                prev_hash=ev.prev_hash) == ev.hash:
            return True
        try:
            data = json.loads(data)
        except ValueError:
            return False
    return bool(event_hash(seq=ev.seq, incident_id=ev.incident_id, type=ev.type, at=ev.at,
                           actor=ev.actor, data=data, prev_hash=ev.prev_hash) == ev.hash)


def verify_chain(events: Iterable[ChainRecord], prev_hash: str = GENESIS_HASH,
                 expected_seq: int | None = None) -> ChainBreak | None:
    """Walk a run of events; return the first break, or None when the run is intact."""
    for ev in events:
        if expected_seq is not None and ev.seq != expected_seq:
            return ChainBreak(expected_seq, f"missing event: expected seq {expected_seq}, "
                              f"found {ev.seq}")
        if ev.prev_hash != prev_hash:
            return ChainBreak(ev.seq, "prev_hash does not match the previous record's hash")
        if not record_hash_matches(ev):
            return ChainBreak(ev.seq, "hash does not match the record's content")
        prev_hash = ev.hash
        expected_seq = ev.seq + 1
    return None
