"""Structured logging (structlog) and the agent's own Prometheus metrics."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

SECRET_KEYS = frozenset({"authorization", "api_key", "token", "password", "secret", "cookie"})


def _drop_secrets(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Last line of defence: a secret-looking key never reaches the output."""
    for key in list(event_dict):
        if any(word in key.lower() for word in SECRET_KEYS):
            event_dict[key] = "[redacted]"
    return event_dict


# Third-party loggers: httpx logs every request at INFO, and openai's DEBUG output dumps
# request options; neither belongs in the agent's log below these levels.
QUIET_LOGGERS = {"httpx": logging.WARNING, "httpcore": logging.WARNING, "openai": logging.INFO}


def configure_logging(fmt: str = "json", level: str = "INFO") -> None:
    """structlog for the agent's own events, and the same rendering for every stdlib logger
    (openai's "Retrying request ...", httpx, uvicorn's errors): one JSON object per line."""
    renderer: Any = (structlog.processors.JSONRenderer() if fmt == "json"
                     # plain tracebacks: rich's pretty ones take seconds each, with locals
                     else structlog.dev.ConsoleRenderer(
                         colors=False, exception_formatter=structlog.dev.plain_traceback))
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    shared: list[Any] = [
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
    ]
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.format_exc_info, renderer]))
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    for name, floor in QUIET_LOGGERS.items():
        logging.getLogger(name).setLevel(max(floor, numeric))
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            *shared,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )


class Metrics:
    """One registry per app, so several apps (tests) never collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.alerts_received = Counter(
            "sre_agent_alerts_received_total", "Alerts received, by status and novelty",
            ["status", "novelty"], registry=r)
        self.notifications = Counter(
            "sre_agent_notifications_total", "Webhook notifications, by outcome",
            ["outcome"], registry=r)
        self.webhook_latency = Histogram(
            "sre_agent_webhook_latency_seconds", "Webhook handling time, receipt to answer",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=r)
        self.incidents_open = Gauge(
            "sre_agent_incidents_open", "Incidents not yet resolved", registry=r)
        self.events_appended = Counter(
            "sre_agent_events_appended_total", "Events appended to the log, by type",
            ["type"], registry=r)
        self.stage_seconds = Histogram(
            "sre_agent_stage_seconds", "Pipeline stage duration", ["stage"], registry=r)
        self.pipeline_deferred = Gauge(  # set_function: IngestFirst.deferred_s (bootstrap)
            "sre_agent_pipeline_deferred_seconds", "Seconds the pipeline's store calls waited "
            "in all for webhooks in flight (ingest first; only grows)", registry=r)
        self.stage_errors = Counter(
            "sre_agent_stage_errors_total", "Pipeline stage failures", ["stage"], registry=r)
