"""The LLM's read-only investigation tools, backed by the real collectors."""

from __future__ import annotations

from sre_agent.domain.evidence import Evidence, EvidenceStatus
from sre_agent.evidence.docker import DockerEvidence
from sre_agent.evidence.prometheus import PrometheusEvidence


def _unconfigured(source: str, name: str) -> Evidence:
    return Evidence(source=source, name=name, status=EvidenceStatus.ERROR,
                    error=f"{source} is not configured")


class CollectorTools:
    """Implements ``analysis.tools.InvestigationTools`` over the configured collectors."""

    def __init__(self, prometheus: PrometheusEvidence | None,
                 docker: DockerEvidence | None) -> None:
        self.prometheus = prometheus
        self.docker = docker

    async def query_prometheus(self, promql: str) -> Evidence:
        if self.prometheus is None:
            return _unconfigured("prometheus", "query")
        return await self.prometheus.query(promql)

    async def container_state(self, name: str) -> Evidence:
        if self.docker is None:
            return _unconfigured("docker", name)
        return await self.docker.container_state(name)

    async def container_logs(self, name: str, tail: int = 50) -> Evidence:
        if self.docker is None:
            return _unconfigured("docker", name)
        return await self.docker.container_logs(name, tail)
