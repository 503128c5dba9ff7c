"""The one place that reads Settings and wires concrete adapters together."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sre_agent import __version__
from sre_agent.actions.docker import DockerActionBackend, DockerContainerVerifier
from sre_agent.actions.notify import WebhookNotifier
from sre_agent.actions.silence import AlertmanagerSilenceBackend
from sre_agent.analysis.chain import FallbackAnalyzer
from sre_agent.analysis.rules import RulesAnalyzer
from sre_agent.analysis.tools import InvestigationTools
from sre_agent.config import Role, Settings
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.evidence import AlertContext
from sre_agent.domain.policy import Policy
from sre_agent.evidence.docker import DockerEvidence
from sre_agent.evidence.http_probe import HttpProbe
from sre_agent.evidence.investigation import CollectorTools
from sre_agent.evidence.prometheus import PrometheusEvidence
from sre_agent.evidence.targets import DockerTargetResolver
from sre_agent.ingest_first import IngestFirst
from sre_agent.integrations.pagerduty import PagerDutyEvents
from sre_agent.integrations.slack import SlackBot, SlackWebhook
from sre_agent.integrations.teams import TeamsWorkflow
from sre_agent.observability import Metrics
from sre_agent.pipeline.analyse import AnalyseStage
from sre_agent.pipeline.commands import CommandBus
from sre_agent.pipeline.delivery import DeliveryWorker
from sre_agent.pipeline.explain import ExplainStage, Explanations
from sre_agent.pipeline.handlers import Deps, Remediation
from sre_agent.pipeline.inbox import InboxDrainer
from sre_agent.pipeline.runner import PipelineRunner, replica_id
from sre_agent.pipeline.stages import Stage
from sre_agent.ports import (
    ActionBackend,
    Analyzer,
    ChatDestination,
    ContainerVerifier,
    EventStore,
    EvidenceSource,
    QueryFn,
    TargetResolver,
)
from sre_agent.replica import Heartbeat, ReplicaInfo
from sre_agent.store.sql import SqlEventStore


@dataclass
class Analysis:
    """Everything the analyse stage, the simulator and the CLI need."""

    analyzer: FallbackAnalyzer
    rules: RulesAnalyzer
    resolver: TargetResolver | None
    sources: list[EvidenceSource]
    prometheus: PrometheusEvidence | None
    docker: DockerEvidence | None

    @property
    def queries_for(self) -> Callable[[AlertContext], dict[str, str]]:
        return self.rules.queries_for


@dataclass
class Services:
    """The wiring box: every long-lived part of one agent process (not a Docker container)."""

    settings: Settings
    store: EventStore
    metrics: Metrics
    runner: PipelineRunner
    analysis: Analysis
    backends: dict[ActionKind, ActionBackend]
    policy: Policy
    commands: CommandBus
    delivery: DeliveryWorker
    replica: ReplicaInfo
    heartbeat: Heartbeat
    inbox: InboxDrainer  # ingests notifications answered before correlation (webhook_ack)
    ingest_first: IngestFirst = field(default_factory=lambda: IngestFirst(max_defer_s=0))
    slack: SlackBot | None = None  # the Web API client, for answers to button clicks
    started_at: float = field(default_factory=time.time)


def build_analysis(settings: Settings, *, use_docker: bool = True,
                   use_llm: bool = True) -> Analysis:
    rules = RulesAnalyzer(settings.runbooks_dir)
    timeout = settings.evidence_timeout_s
    shared = settings.evidence_cache_s
    prometheus = (PrometheusEvidence(settings.prometheus_url, timeout, recent_s=shared)
                  if settings.prometheus_url else None)
    docker = (DockerEvidence(timeout, settings.log_tail_lines, recent_s=shared)
              if use_docker else None)
    resolver = (DockerTargetResolver(docker, scope_label=settings.scope_label,
                                     list_cache_s=settings.docker_list_cache_s)
                if docker else None)
    sources: list[EvidenceSource] = [s for s in (prometheus, docker) if s is not None]
    sources.append(HttpProbe(timeout, recent_s=shared))
    llm_settings = settings.llm if use_llm else settings.llm.model_copy(
        update={"api_key": None, "base_url": None})
    analyzer = FallbackAnalyzer.from_settings(
        llm_settings, rules, tools=CollectorTools(prometheus, docker),
        hard_timeout_s=min(2 * settings.llm.timeout_s, settings.stage_timeout_s / 2))
    return Analysis(analyzer, rules, resolver, sources, prometheus, docker)


def build_analyzer(settings: Settings, engine: str,
                   tools: InvestigationTools | None = None) -> Analyzer:
    """For offline evaluation: the rules alone, the LLM chain (rules as its fallback), or the
    combined engine (``analysis/combine.py``)."""
    rules = RulesAnalyzer(settings.runbooks_dir)
    if engine == "rules":
        return rules
    if not settings.llm.enabled:
        raise ValueError(f"--engine {engine} needs SRE_AGENT_LLM__BASE_URL (a local server) "
                         "or SRE_AGENT_LLM__API_KEY")
    # One scenario at a time, on purpose: the production calls-per-minute budget would only
    # turn part of the run into rules fallbacks.
    llm = settings.llm.model_copy(update={"calls_per_minute": 1_000_000})
    return FallbackAnalyzer.from_settings(llm, rules, tools=tools, combine=engine == "combined")


def build_backends(settings: Settings) -> dict[ActionKind, ActionBackend]:
    docker = DockerActionBackend(settings.action_timeout_s, settings.docker_stop_timeout_s)
    notifier = WebhookNotifier(settings.notify_url, timeout_s=settings.action_timeout_s,
                               chat=sorted(settings.configured_destinations))
    backends: dict[ActionKind, ActionBackend] = {
        ActionKind.RESTART_CONTAINER: docker, ActionKind.START_CONTAINER: docker,
        ActionKind.NOTIFY: notifier, ActionKind.ESCALATE: notifier}
    if settings.alertmanager_url:
        backends[ActionKind.SILENCE_ALERT] = AlertmanagerSilenceBackend(
            settings.alertmanager_url, timeout_s=settings.action_timeout_s,
            default_duration_s=settings.silence_duration_s)
    return backends


def build_destinations(settings: Settings) -> list[ChatDestination]:
    """Slack (a bot, else an incoming webhook), Teams and PagerDuty, as configured."""
    timeout = settings.delivery_timeout_s
    out: list[ChatDestination] = []
    if settings.slack_bot_token is not None and settings.slack_channel is not None:
        out.append(SlackBot(settings.slack_bot_token.get_secret_value(), settings.slack_channel,
                            settings.slack_api_url, timeout,
                            interactive=settings.slack_signing_secret is not None
                            and bool(settings.slack_approvers)))
    elif settings.slack_webhook_url is not None:
        out.append(SlackWebhook(settings.slack_webhook_url.get_secret_value(), timeout))
    if settings.teams_webhook_url is not None:
        out.append(TeamsWorkflow(settings.teams_webhook_url.get_secret_value(), timeout))
    if settings.pagerduty_routing_key is not None:
        out.append(PagerDutyEvents(settings.pagerduty_routing_key.get_secret_value(),
                                   settings.pagerduty_events_url, timeout))
    return out


def build_delivery(settings: Settings, store: EventStore,
                   destinations: list[ChatDestination]) -> DeliveryWorker:
    return DeliveryWorker(
        store, destinations, settings.routing(), settings.dashboard_url,
        poll_s=settings.delivery_poll_s, max_attempts=settings.delivery_max_attempts,
        backoff_s=settings.delivery_backoff_s,
        leases=settings.database_url.startswith("postgresql"),
        owner=f"delivery:{replica_id()}", lease_ttl_s=settings.lease_ttl_s)


@dataclass
class Fakes:
    """What a test may put in place of a real part (cosmicpython's bootstrap seam): anything
    left None is built from the settings, exactly as in production."""

    analyzer: Analyzer | None = None
    resolver: TargetResolver | None = None
    sources: list[EvidenceSource] | None = None
    verifier: ContainerVerifier | None = None
    query: QueryFn | None = None


def build_stages(settings: Settings, analysis: Analysis,
                 backends: dict[ActionKind, ActionBackend], policy: Policy,
                 store: EventStore, fakes: Fakes | None = None) -> list[Stage]:
    """The pipeline after correlation, in order: analyse, then the remediation handlers."""
    f = fakes or Fakes()
    analyzer = f.analyzer or analysis.analyzer
    # The LLM's explanation of a diagnosis decided without it (analysis/combine.py, rule 5).
    explanations = Explanations(analyzer, store) if isinstance(analyzer, FallbackAnalyzer) \
        and analyzer.combines else None
    analyse = AnalyseStage(analyzer,
                           resolver=f.resolver if f.resolver is not None else analysis.resolver,
                           sources=f.sources if f.sources is not None else analysis.sources,
                           queries_for=analysis.queries_for, rules=analysis.rules,
                           explanations=explanations)
    query = f.query or (analysis.prometheus.query if analysis.prometheus else None)
    remediate = Remediation(Deps(
        backends, policy, default_mode=settings.mode,
        verifier=f.verifier if f.verifier is not None else DockerContainerVerifier(),
        query=query))
    if explanations is None:
        return [analyse, remediate]
    return [analyse, remediate, ExplainStage(explanations)]


def build_services(settings: Settings, *, store: EventStore | None = None,
                   backends: dict[ActionKind, ActionBackend] | None = None,
                   fakes: Fakes | None = None) -> Services:
    """The whole agent for ``settings``; tests pass a store, backends or fakes.

    The role decides what runs here: an ``api`` replica's runner is inactive (its submits are
    no-ops: the workers poll the store); a worker and an ``all`` replica on PostgreSQL poll the
    store for work every ``worker_poll_s``; on SQLite (one process) ``all`` needs no poll."""
    if (error := settings.role_error()) is not None:
        raise ValueError(error)
    metrics = Metrics()
    replica = ReplicaInfo(role=settings.role.value, version=__version__)
    the_store: EventStore = store if store is not None else SqlEventStore(settings.database_url)
    analysis = build_analysis(settings)
    the_backends = backends if backends is not None else build_backends(settings)
    policy = settings.policy()
    ingest_first = IngestFirst(max_defer_s=settings.ingest_first_max_defer_s)
    metrics.pipeline_deferred.set_function(lambda: ingest_first.deferred_s)
    runner = PipelineRunner(
        the_store, build_stages(settings, analysis, the_backends, policy, the_store, fakes),
        workers=settings.workers, stage_timeout_s=settings.stage_timeout_s, metrics=metrics,
        sweep_s=settings.resume_sweep_s, lease_ttl_s=settings.lease_ttl_s,
        leases=settings.on_postgresql, owner=replica.id,
        poll_s=settings.worker_poll_s if settings.on_postgresql else None,
        active=settings.role is not Role.API, ingest_first=ingest_first)
    inbox = InboxDrainer(the_store, runner.submit, metrics, poll_s=settings.worker_poll_s,
                         active=settings.role is not Role.API, ingest_first=ingest_first)
    commands = CommandBus(the_store, policy, default_mode=settings.mode, submit=runner.submit,
                          silencer=the_backends.get(ActionKind.SILENCE_ALERT))
    destinations = build_destinations(settings)
    slack = next((d for d in destinations if isinstance(d, SlackBot)), None)
    return Services(settings=settings, store=the_store, metrics=metrics, runner=runner,
                    analysis=analysis, backends=the_backends, policy=policy,
                    commands=commands, replica=replica, ingest_first=ingest_first, inbox=inbox,
                    heartbeat=Heartbeat(the_store, replica, settings.heartbeat_s),
                    delivery=build_delivery(settings, the_store, destinations), slack=slack)
