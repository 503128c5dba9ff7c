"""Target resolution decisions, without Docker: alert labels + container summaries → targets."""

from __future__ import annotations

import pytest

from sre_agent.evidence.docker import ContainerSummary, PublishedPort
from sre_agent.evidence.targets import resolve_targets, split_instance

WEB_LABELS = {"sre-agent.job": "web", "sre-agent.managed": "true",
              "sre-agent.health-url": "http://127.0.0.1:28080/health"}


def c(name: str, labels: dict[str, str] | None = None, ports: tuple[int, ...] = (),
      host_ip: str = "0.0.0.0", cid: str | None = None) -> ContainerSummary:
    return ContainerSummary(
        name=name, id=cid or (name.encode().hex() + "0" * 64)[:64], labels=labels or {},
        ports=tuple(PublishedPort("8080/tcp", host_ip, p) for p in ports), state="running")


CONTAINERS = [
    c("web-1", {**WEB_LABELS, "sre-agent.instance": "127.0.0.1:28080"}, ports=(28080,)),
    c("web-2", {**WEB_LABELS, "sre-agent.instance": "127.0.0.1:28081"}, ports=(28081,)),
    c("worker", {"sre-agent.job": "worker"}),
    c("db", {}, ports=(5432,), host_ip="127.0.0.1"),
    c("cache", {}, cid="abcdef0123456789" + "0" * 48),
]


def test_container_label_wins_and_strips_slash() -> None:
    res = resolve_targets([{"container": "/worker", "job": "web"}], CONTAINERS)
    assert [(t.name, t.via, t.verified) for t in res.targets] == [
        ("worker", "label:container", True)]
    assert res.targets[0].labels == {"sre-agent.job": "worker"}
    assert "worker" in res.reason


@pytest.mark.parametrize("key", ["container", "container_name", "name"])
def test_each_name_label_is_used(key: str) -> None:
    res = resolve_targets([{key: "db"}], CONTAINERS)
    assert [(t.name, t.via) for t in res.targets] == [("db", f"label:{key}")]


def test_health_url_comes_from_the_docker_label() -> None:
    res = resolve_targets([{"container": "web-1"}], CONTAINERS)
    assert res.targets[0].health_url == "http://127.0.0.1:28080/health"
    assert resolve_targets([{"container": "db"}], CONTAINERS).targets[0].health_url is None


def test_named_container_missing_is_unresolved_without_fallback() -> None:
    res = resolve_targets([{"container": "gone", "job": "web"}], CONTAINERS)
    assert res.targets == []
    assert res.unresolved == [{"name": "gone", "via": "label:container",
                               "reason": "no such container"}]
    assert "no such container" in res.reason


def test_docker_unreachable_reports_named_target_unverified() -> None:
    res = resolve_targets([{"container": "/web-1", "job": "web"}], None)
    assert [(t.name, t.verified, t.labels, t.health_url) for t in res.targets] == [
        ("web-1", False, {}, None)]
    assert "unreachable" in res.reason


def test_docker_unreachable_without_name_label_resolves_nothing() -> None:
    res = resolve_targets([{"job": "web", "instance": "127.0.0.1:28080"}], None)
    assert res.targets == []
    assert "unreachable" in res.reason


@pytest.mark.parametrize("bad", ["../../images/x", "a b", "web;rm -rf /", "-x", "x" * 300])
def test_invalid_names_never_become_targets(bad: str) -> None:
    for containers in (CONTAINERS, None):
        res = resolve_targets([{"container": bad}], containers)
        assert res.targets == []
        assert res.unresolved[0]["reason"] == "not a valid container name"


def test_container_id_prefix_matches() -> None:
    res = resolve_targets([{"container": "abcdef012345"}], CONTAINERS)
    assert [t.name for t in res.targets] == ["cache"]


def test_job_label_matches_all_instances_when_alert_has_no_instance() -> None:
    res = resolve_targets([{"job": "web"}], CONTAINERS)
    assert [(t.name, t.via) for t in res.targets] == [
        ("web-1", "docker_label:sre-agent.job"), ("web-2", "docker_label:sre-agent.job")]


def test_job_and_instance_must_both_match() -> None:
    res = resolve_targets([{"job": "web", "instance": "127.0.0.1:28081"}], CONTAINERS)
    assert [t.name for t in res.targets] == ["web-2"]


def test_container_without_instance_label_matches_any_instance() -> None:
    res = resolve_targets([{"job": "worker", "instance": "10.0.0.5:9100"}], CONTAINERS)
    assert [t.name for t in res.targets] == ["worker"]


def test_published_port_is_the_last_resort() -> None:
    res = resolve_targets([{"job": "postgres", "instance": "127.0.0.1:5432"}], CONTAINERS)
    assert [(t.name, t.via) for t in res.targets] == [("db", "port:5432")]


def test_port_bound_to_loopback_does_not_match_another_ip() -> None:
    res = resolve_targets([{"job": "postgres", "instance": "10.1.2.3:5432"}], CONTAINERS)
    assert res.targets == []
    res = resolve_targets([{"job": "postgres", "instance": "localhost:5432"}], CONTAINERS)
    assert [t.name for t in res.targets] == ["db"]


def test_port_on_wildcard_matches_host_names() -> None:
    res = resolve_targets([{"instance": "vm.example:28080"}], CONTAINERS)
    assert [(t.name, t.via) for t in res.targets] == [("web-1", "port:28080")]


def test_instance_host_naming_a_container() -> None:
    res = resolve_targets([{"job": "other", "instance": "worker:9100"}], CONTAINERS)
    assert [(t.name, t.via) for t in res.targets] == [("worker", "instance_host")]


def test_nothing_matches() -> None:
    res = resolve_targets([{"alertname": "X", "job": "nope", "instance": "h:1"}], CONTAINERS)
    assert res.targets == [] and res.unresolved == []
    assert "no container matches" in res.reason


def test_no_identifying_labels() -> None:
    res = resolve_targets([{"alertname": "Watchdog"}], CONTAINERS)
    assert res.targets == []
    assert res.reason == "no alert label identifies a container"


def test_several_alerts_union_without_duplicates() -> None:
    res = resolve_targets([{"container": "web-1"}, {"job": "web"}, {"container": "web-1"}],
                          CONTAINERS)
    assert [(t.name, t.via) for t in res.targets] == [
        ("web-1", "label:container"), ("web-2", "docker_label:sre-agent.job")]


def test_summaries_from_docker_api_shapes() -> None:
    listed = ContainerSummary.from_list_entry({
        "Id": "f" * 64, "Names": ["/web"], "Labels": None, "State": "running",
        "Ports": [{"IP": "0.0.0.0", "PrivatePort": 8080, "PublicPort": 28080, "Type": "tcp"},
                  {"PrivatePort": 9090, "Type": "tcp"}]})
    assert (listed.name, listed.labels, listed.ports) == (
        "web", {}, (PublishedPort("8080/tcp", "0.0.0.0", 28080),))
    inspected = ContainerSummary.from_inspect({
        "Id": "f" * 64, "Name": "/web", "State": {"Status": "exited"},
        "Config": {"Labels": {"a": "b"}},
        "NetworkSettings": {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": "28080"}],
                                      "9090/tcp": None}}})
    assert (inspected.name, inspected.state, inspected.labels, inspected.ports) == (
        "web", "exited", {"a": "b"}, (PublishedPort("8080/tcp", "127.0.0.1", 28080),))


@pytest.mark.parametrize(("instance", "expected"), [
    ("127.0.0.1:28080", ("127.0.0.1", 28080)),
    ("web:8080", ("web", 8080)),
    ("[::1]:9090", ("::1", 9090)),
    ("host-only", ("host-only", None)),
    ("h:notaport", ("h", None)),
    ("h:70000", ("h", None)),
    ("::1", ("::1", None)),
])
def test_split_instance(instance: str, expected: tuple[str, int | None]) -> None:
    assert split_instance(instance) == expected
