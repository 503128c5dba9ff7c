"""The evidence on the incident page, from the data shapes the real collectors produce."""

from __future__ import annotations

from sre_agent.domain.events import Actor, NewEvent, StoredEvent
from sre_agent.domain.events import payloads as ev
from sre_agent.domain.evidence import Evidence, EvidenceStatus
from sre_agent.evidence.docker import state_data
from sre_agent.evidence.prometheus import summarise_instant
from sre_agent.web.evidence_view import evidence_items, threshold_of


def stored(payload: ev.EventPayload, seq: int = 1) -> StoredEvent:
    new = NewEvent.of(payload, Actor.AGENT, "inc-1")
    return StoredEvent(seq=seq, incident_id="inc-1", type=new.type, at="2026-01-01T00:00:00Z",
                       actor=new.actor, data=new.data, prev_hash="0" * 64, hash="1" * 64)


def test_thresholds_are_read_from_the_end_of_the_expression() -> None:
    assert threshold_of('rate(http_errors_total{job="web"}[5m]) > 0.5') == "> 0.5"
    assert threshold_of("up == 0") == "== 0"
    assert threshold_of("(node_filesystem_avail_bytes / node_filesystem_size_bytes) < 0.1") \
        == "< 0.1"
    assert threshold_of("absent(up)") == ""


def test_container_prometheus_and_probe_evidence_are_readable() -> None:
    attrs = {"Name": "/web", "Id": "abc123def4567890", "RestartCount": 3,
             "State": {"Status": "exited", "ExitCode": 137, "OOMKilled": True,
                       "StartedAt": "2026-01-01T00:00:00Z", "FinishedAt": "x"},
             "Config": {"Image": "shop/web:1.2", "Labels": {}}}
    docker = {**state_data(attrs), "logs": ["GET /cart 500", "out of memory: killed [REDACTED]"]}
    expr = 'rate(http_errors_total{job="web"}[5m]) > 0.5'
    _, prom = summarise_instant(expr, [{"metric": {"instance": "web:8080"},
                                        "value": [1, "0.93"]}])
    probe = {"url": "http://web:8080/health", "status_code": None, "healthy": False,
             "response_ms": 2003.4}
    evidence = [
        Evidence(source="docker", name="web", status=EvidenceStatus.OK, data=docker),
        Evidence(source="prometheus", name="alert_expr", status=EvidenceStatus.OK, data=prom),
        Evidence(source="http_probe", name="web", status=EvidenceStatus.ERROR, data=probe,
                 error="timed out after 2s"),
    ]
    items = evidence_items([stored(ev.EvidenceCollected(
        evidence=[e.model_dump(mode="json") for e in evidence]))])
    container, query, check = items
    facts = dict(container.facts)
    assert (facts["State"], facts["Restarts"], facts["Exit code"], facts["OOM killed"]) == (
        "exited", "3", "137", "yes")
    assert container.lines == ["GET /cart 500", "out of memory: killed [REDACTED]"]
    assert container.lines_label == "Log tail"
    assert query.query == expr and dict(query.facts)["Value"] == "0.93"
    assert dict(query.facts)["Alert threshold"] == "> 0.5"
    assert query.lines == ['{instance="web:8080"} = 0.93']
    assert check.status.label == "error" and check.error == "timed out after 2s"
    assert dict(check.facts)["Latency"] == "2003 ms"
    assert dict(check.facts)["HTTP status"] == "no answer"


def test_the_last_collection_counts_and_none_is_empty() -> None:
    first = ev.EvidenceCollected(evidence=[{"source": "docker", "name": "a", "status": "ok",
                                            "data": {"status": "running"}}])
    second = ev.EvidenceCollected(evidence=[{"source": "docker", "name": "b", "status": "ok",
                                             "data": {"status": "exited"}}])
    [item] = evidence_items([stored(first, 1), stored(second, 2)])
    assert dict(item.facts)["State"] == "exited"
    assert evidence_items([]) == []
