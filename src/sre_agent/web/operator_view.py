"""What the operator needs around the controls: where a paged list stands, who paused and
why, how long an approval has left. Small views; the async helpers read the store port."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sre_agent.domain.events import EventType
from sre_agent.ports import EventStore
from sre_agent.web.incident_view import approval_deadlines
from sre_agent.web.views import clip, fmt_duration, fmt_time

SILENCE_CHOICES = ((900, "15 minutes"), (3600, "1 hour"), (4 * 3600, "4 hours"),
                   (24 * 3600, "24 hours"))


@dataclass(frozen=True)
class PageLinks:
    """Where a paged list stands: "alerts 101-200 of 5,000", and the offsets around it."""

    first: int
    last: int
    total: int
    limit: int
    prev_offset: int | None
    next_offset: int | None

    @property
    def paged(self) -> bool:
        return self.prev_offset is not None or self.next_offset is not None


def page_links(offset: int, limit: int, shown: int, total: int) -> PageLinks:
    total = max(total, offset + shown)
    return PageLinks(first=offset + 1 if shown else 0, last=offset + shown, total=total,
                     limit=limit, prev_offset=max(0, offset - limit) if offset > 0 else None,
                     next_offset=offset + shown if offset + shown < total else None)


@dataclass(frozen=True)
class PauseInfo:
    """Who pulled the kill switch, when, and why (from the last Paused event)."""

    by: str
    at: str
    time: str
    reason: str


def pause_info(actor: str, at: str, reason: str) -> PauseInfo:
    return PauseInfo(by=clip(actor, 80), at=at, time=fmt_time(at),
                     reason=clip(reason, 300) or "no reason given")


@dataclass(frozen=True)
class Countdown:
    """An approval's deadline: the page counts down to ``until`` (ISO) and says when it passed."""

    until: str
    text: str
    expired: bool


def countdown(expires_ts: float | None, now: float) -> Countdown | None:
    if expires_ts is None:
        return None
    left = float(expires_ts) - now
    until = datetime.fromtimestamp(float(expires_ts), UTC).isoformat()
    if left <= 0:
        return Countdown(until, "approval window passed", True)
    return Countdown(until, f"expires in {fmt_duration(left)}", False)


async def pause_state(store: EventStore) -> PauseInfo | None:
    """Who paused, when and why, while the kill switch is on."""
    if (await store.control_state()).get("paused") != "true":
        return None
    last = await store.last_event([EventType.PAUSED])
    if last is None:
        return pause_info("?", "", "")
    return pause_info(last.actor, last.at, str(last.data.get("reason") or ""))


async def deadlines_of(store: EventStore, incident_ids: list[str]) -> dict[str, float]:
    """action id -> approval expiry, for the actions of these incidents."""
    found: dict[str, float] = {}
    for incident_id in dict.fromkeys(incident_ids):
        found.update(approval_deadlines(await store.list_events(
            incident_id=incident_id, types=[EventType.ACTION_AWAITING_APPROVAL], limit=10_000)))
    return found


def countdowns(deadlines: dict[str, float], now: float) -> dict[str, Countdown]:
    return {aid: c for aid, ts in deadlines.items() if (c := countdown(ts, now)) is not None}
