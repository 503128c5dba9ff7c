"""Fixtures for the handler unit tests: one clock shared by the in-memory store and the deps."""

from __future__ import annotations

import pytest

from tests.support.handlers import Clock
from tests.support.memory_store import InMemoryEventStore


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock: Clock) -> InMemoryEventStore:
    return InMemoryEventStore(clock)
