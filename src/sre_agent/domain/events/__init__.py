"""Events: the append-only log is the source of truth; everything else is a projection.

- ``types``: the event types and actors;
- ``payloads``: one pydantic model per event type and the registry from type to model;
- ``chain``: new and stored records and the hash chain over them.
"""

from sre_agent.domain.events.chain import (
    GENESIS_HASH,
    ChainBreak,
    NewEvent,
    StoredEvent,
    canonical_json,
    event_hash,
    event_hash_from_text,
    event_type_of,
    utc_now,
    verify_chain,
)
from sre_agent.domain.events.payloads import (
    PAYLOADS,
    EventPayload,
    ResultData,
    UnknownPayload,
    parse_payload,
)
from sre_agent.domain.events.types import DELIVERY_TYPES, Actor, EventType

__all__ = [
    "DELIVERY_TYPES", "GENESIS_HASH", "PAYLOADS", "Actor", "ChainBreak", "EventPayload",
    "EventType", "NewEvent",
    "ResultData", "StoredEvent", "UnknownPayload", "canonical_json", "event_hash",
    "event_hash_from_text", "event_type_of", "parse_payload", "utc_now", "verify_chain",
]
