"""The one place that reads Settings and wires concrete adapters together."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sre_agent.actions.docker import DockerActionBackend, DockerContainerVerifier
from sre_agent.actions.notify import WebhookNotifier
from sre_agent.actions.ports import ActionBackend
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
from sre_agent.pipeline.ports import Analyzer, EvidenceSource, TargetResolver
from sre_agent.pipeline.remediate import RemediateStage
from sre_agent.pipeline.runner import PipelineRunner
from sre_agent.pipeline.stages import Stage
from sre_agent.store.ports import EventStore
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
class Container:
    settings: Settings
    store: EventStore
    metrics: Metrics
    runner: PipelineRunner
    analysis: Analysis
    backends: dict[ActionKind, ActionBackend]
    policy: Policy
    started_at: float = field(default_factory=time.time)


def build_analysis(settings: Settings, *, use_docker: bool = True,
                   use_llm: bool = True) -> Analysis:
    rules = RulesAnalyzer(settings.runbooks_dir)
    timeout = settings.evidence_timeout_s
    prometheus = (PrometheusEvidence(settings.prometheus_url, timeout)
                  if settings.prometheus_url else None)
    docker = DockerEvidence(timeout, settings.log_tail_lines) if use_docker else None
    resolver = (DockerTargetResolver(docker, scope_label=settings.scope_label)
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


def build_stages(settings: Settings, analysis: Analysis,
                 backends: dict[ActionKind, ActionBackend], policy: Policy) -> list[Stage]:
    """The pipeline after correlation, in order."""
    analyse = AnalyseStage(analysis.analyzer, resolver=analysis.resolver,
                           sources=analysis.sources, queries_for=analysis.queries_for,
                           rules=analysis.rules)
    remediate = RemediateStage(
        backends, policy, default_mode=settings.mode, verifier=DockerContainerVerifier(),
        query=analysis.prometheus.query if analysis.prometheus else None)
    return [analyse, remediate]


def build_container(settings: Settings, *, store: EventStore | None = None,
                    stages: list[Stage] | None = None,
                    backends: dict[ActionKind, ActionBackend] | None = None) -> Container:
    metrics = Metrics()
    the_store: EventStore = store if store is not None else SqlEventStore(settings.database_url)
    analysis = build_analysis(settings)
    the_backends = backends if backends is not None else build_backends(settings)
    policy = settings.policy()
    runner = PipelineRunner(
        the_store,
        stages if stages is not None else build_stages(settings, analysis, the_backends,
                                                       policy),
        workers=settings.workers, stage_timeout_s=settings.stage_timeout_s, metrics=metrics)
    return Container(settings=settings, store=the_store, metrics=metrics, runner=runner,
                     analysis=analysis, backends=the_backends, policy=policy)
