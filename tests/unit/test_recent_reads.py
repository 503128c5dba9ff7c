"""Evidence reads shared between incidents for a moment (evidence/recent.py)."""

from __future__ import annotations

import asyncio

import pytest

from sre_agent.evidence.recent import RecentReads


class Reader:
    """Counts reads; each answers ``answer`` after ``delay_s``."""

    def __init__(self, answer: str = "ok", delay_s: float = 0.0) -> None:
        self.calls = 0
        self.answer = answer
        self.delay_s = delay_s

    async def __call__(self) -> str:
        self.calls += 1
        n = self.calls
        await asyncio.sleep(self.delay_s)
        if self.answer == "boom":
            raise RuntimeError("boom")
        return f"{self.answer}-{n}"


async def test_concurrent_askers_share_one_read_and_the_joiners_are_told() -> None:
    now = [100.0]
    recent: RecentReads[str] = RecentReads(1.0, clock=lambda: now[0])
    read = Reader(delay_s=0.05)
    first = asyncio.create_task(recent.get("web", read))
    await asyncio.sleep(0)
    now[0] = 100.2
    second = await recent.get("web", read)
    assert await first == ("ok-1", None)  # its own read
    assert second == ("ok-1", 0.2)  # shared, asked 0.2 s after the read began
    assert read.calls == 1


async def test_an_answer_is_reused_within_the_ttl_only() -> None:
    now = [0.0]
    recent: RecentReads[str] = RecentReads(1.0, clock=lambda: now[0])
    read = Reader()
    assert await recent.get("q", read) == ("ok-1", None)
    now[0] = 0.9
    assert await recent.get("q", read) == ("ok-1", 0.9)
    assert await recent.get("other", read) == ("ok-2", None)  # keys are apart
    now[0] = 1.2
    assert await recent.get("q", read) == ("ok-3", None)  # too old: read again


async def test_failures_and_unkept_answers_are_never_reused() -> None:
    recent: RecentReads[str] = RecentReads(10.0, keep=lambda v: not v.startswith("bad"))
    failing = Reader("boom")
    for _ in range(2):
        with pytest.raises(RuntimeError):
            await recent.get("k", failing)
    assert failing.calls == 2
    bad = Reader("bad")
    assert (await recent.get("b", bad))[0] == "bad-1"
    assert (await recent.get("b", bad))[0] == "bad-2"


async def test_ttl_zero_reads_every_time() -> None:
    recent: RecentReads[str] = RecentReads(0.0)
    read = Reader(delay_s=0.01)
    got = await asyncio.gather(recent.get("k", read), recent.get("k", read))
    assert sorted(got) == [("ok-1", None), ("ok-2", None)]


async def test_a_caller_that_gives_up_does_not_cancel_the_read_others_wait_for() -> None:
    recent: RecentReads[str] = RecentReads(5.0)
    read = Reader(delay_s=0.1)
    impatient = asyncio.create_task(asyncio.wait_for(recent.get("k", read), 0.01))
    await asyncio.sleep(0.001)  # its read is in flight
    patient = asyncio.create_task(recent.get("k", read))
    with pytest.raises(TimeoutError):
        await impatient
    value, age = await patient
    assert value == "ok-1" and age is not None and read.calls == 1
    reused, _ = await recent.get("k", read)  # the finished read was kept for the others
    assert reused == "ok-1" and read.calls == 1
