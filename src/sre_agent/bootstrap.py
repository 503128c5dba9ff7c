"""The one place that reads Settings and wires concrete adapters together."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sre_agent.actions.docker import DockerActionBackend, DockerContainerVerifier
from sre_agent.actions.notify import WebhookNotifier
from sre_agent.actions.silence import AlertmanagerSilenceBackend
from sre_agent.analysis.chain import FallbackAnalyzer
from sre_agent.analysis.rules import RulesAnalyzer
from sre_agent.analysis.tools import InvestigationTools
from sre_agent.config import Settings
from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.evidence import AlertContext
from sre_agent.domain.policy import Policy
from sre_agent.evidence.docker import DockerEvidence
from sre_agent.evidence.http_probe import HttpProbe
from sre_agent.evidence.investigation import CollectorTools
from sre_agent.evidence.prometheus import PrometheusEvidence
from sre_agent.evidence.targets import DockerTargetResolver
from sre_agent.observability import Metrics
from sre_agent.pipeline.analyse import AnalyseStage
from sre_agent.pipeline.commands import CommandBus
from sre_agent.pipeline.handlers import Deps, Remediation
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.pipeline.stages import Stage
from sre_agent.ports import (
    ActionBackend,
    Analyzer,
    ContainerVerifier,
    EventStore,
    EvidenceSource,
    QueryFn,
    TargetResolver,
)
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
    started_at: float = field(default_factory=time.time)


def build_analysis(settings: Settings, *, use_docker: bool = True,
                   use_llm: bool = True) -> Analysis:
    rules = RulesAnalyzer(settings.runbooks_dir)
    timeout = settings.evidence_timeout_s
    prometheus = (PrometheusEvidence(settings.prometheus_url, timeout)
                  if settings.prometheus_url else None)
    docker = DockerEvidence(timeout, settings.log_tail_lines) if use_docker else None
    resolver = (DockerTargetResolver(docker, scope_label=settings.scope_label,
                                     list_cache_s=settings.docker_list_cache_s)
                if docker else None)
    sources: list[EvidenceSource] = [s for s in (prometheus, docker) if s is not None]
    sources.append(HttpProbe(timeout))
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
    notifier = WebhookNotifier(settings.notify_url, timeout_s=settings.action_timeout_s)
    backends: dict[ActionKind, ActionBackend] = {
        ActionKind.RESTART_CONTAINER: docker, ActionKind.START_CONTAINER: docker,
        ActionKind.NOTIFY: notifier, ActionKind.ESCALATE: notifier}
    if settings.alertmanager_url:
        backends[ActionKind.SILENCE_ALERT] = AlertmanagerSilenceBackend(
            settings.alertmanager_url, timeout_s=settings.action_timeout_s,
            default_duration_s=settings.silence_duration_s)
    return backends


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
                 fakes: Fakes | None = None) -> list[Stage]:
    """The pipeline after correlation, in order: analyse, then the remediation handlers."""
    f = fakes or Fakes()
    analyse = AnalyseStage(f.analyzer or analysis.analyzer,
                           resolver=f.resolver if f.resolver is not None else analysis.resolver,
                           sources=f.sources if f.sources is not None else analysis.sources,
                           queries_for=analysis.queries_for, rules=analysis.rules)
    query = f.query or (analysis.prometheus.query if analysis.prometheus else None)
    remediate = Remediation(Deps(
        backends, policy, default_mode=settings.mode,
        verifier=f.verifier if f.verifier is not None else DockerContainerVerifier(),
        query=query))
    return [analyse, remediate]


def build_services(settings: Settings, *, store: EventStore | None = None,
                   backends: dict[ActionKind, ActionBackend] | None = None,
                   fakes: Fakes | None = None) -> Services:
    """The whole agent for ``settings``; tests pass a store, backends or fakes."""
    metrics = Metrics()
    the_store: EventStore = store if store is not None else SqlEventStore(settings.database_url)
    analysis = build_analysis(settings)
    the_backends = backends if backends is not None else build_backends(settings)
    policy = settings.policy()
    runner = PipelineRunner(
        the_store, build_stages(settings, analysis, the_backends, policy, fakes),
        workers=settings.workers, stage_timeout_s=settings.stage_timeout_s, metrics=metrics,
        sweep_s=settings.resume_sweep_s, lease_ttl_s=settings.lease_ttl_s,
        leases=settings.database_url.startswith("postgresql"))
    commands = CommandBus(the_store, policy, default_mode=settings.mode, submit=runner.submit,
                          silencer=the_backends.get(ActionKind.SILENCE_ALERT))
    return Services(settings=settings, store=the_store, metrics=metrics, runner=runner,
                    analysis=analysis, backends=the_backends, policy=policy,
                    commands=commands)
