"""When a prompted investigation is offered: only where a tool could add to the evidence."""

from __future__ import annotations

from sre_agent.analysis.prompts import evidence_gaps
from sre_agent.domain.evidence import Evidence, EvidenceStatus, ResolvedTarget

API = ResolvedTarget(name="api", via="label:container", verified=True)
DB = ResolvedTarget(name="db", via="label:container", verified=True)
PROM = Evidence(source="prometheus", name="up", status=EvidenceStatus.OK, data={"result": []})
NO_SERIES = Evidence(source="prometheus", name="up", status=EvidenceStatus.NO_DATA)
PROM_DOWN = Evidence(source="prometheus", name="up", status=EvidenceStatus.ERROR,
                     error="connection refused")


def docker(name: str, status: EvidenceStatus = EvidenceStatus.OK) -> Evidence:
    return Evidence(source="docker", name=name, status=status,
                    data={"container": name, "status": "running"})


def test_complete_evidence_has_no_gap() -> None:
    assert evidence_gaps([API], [PROM, docker("api")]) == []
    assert evidence_gaps([], [PROM]) == []
    assert evidence_gaps([API], [NO_SERIES, docker("api")]) == []  # no series is an answer


def test_a_resolved_container_without_its_state_is_a_gap() -> None:
    assert evidence_gaps([API, DB], [PROM, docker("api")]) == ["the state of container db"]
    gaps = evidence_gaps([API], [PROM, docker("api", EvidenceStatus.ERROR)])
    assert gaps == ["docker api (error)", "the state of container api"]


def test_a_failed_source_is_a_gap_an_absent_one_is_not() -> None:
    assert evidence_gaps([API], [PROM_DOWN, docker("api")]) == ["prometheus up (error)"]
    # No Prometheus configured: its tool would ask the same (absent) Prometheus.
    assert evidence_gaps([API], [docker("api")]) == []


def test_gap_text_is_clipped_and_bounded() -> None:
    many = [ResolvedTarget(name=f"c{i}" + "x" * 300, via="label", verified=True)
            for i in range(20)]
    gaps = evidence_gaps(many, [PROM])
    assert len(gaps) == 8 and all(len(g) < 120 for g in gaps)
