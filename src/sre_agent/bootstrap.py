"""The one place that reads Settings and wires concrete adapters together."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sre_agent.config import Settings
from sre_agent.observability import Metrics
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.pipeline.stages import Stage
from sre_agent.store.ports import EventStore
from sre_agent.store.sql import SqlEventStore


@dataclass
class Container:
    settings: Settings
    store: EventStore
    metrics: Metrics
    runner: PipelineRunner
    started_at: float = field(default_factory=time.time)


def build_stages(settings: Settings) -> list[Stage]:
    """The pipeline after correlation. Later stages plug in here, in order."""
    return []


def build_container(settings: Settings, *, store: EventStore | None = None,
                    stages: list[Stage] | None = None) -> Container:
    metrics = Metrics()
    the_store: EventStore = store if store is not None else SqlEventStore(settings.database_url)
    runner = PipelineRunner(
        the_store, stages if stages is not None else build_stages(settings),
        workers=settings.workers, stage_timeout_s=settings.stage_timeout_s, metrics=metrics)
    return Container(settings=settings, store=the_store, metrics=metrics, runner=runner)
