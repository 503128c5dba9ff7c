"""Do no harm (docs/runbooks.md): when a container action is proposed, and when never."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote_plus

import pytest

from sre_agent.analysis.rules import RulesAnalyzer
from sre_agent.domain.diagnosis import CONTAINER_ACTIONS, ActionKind, Category
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget

START, RESTART = ActionKind.START_CONTAINER, ActionKind.RESTART_CONTAINER


@pytest.fixture(scope="module")
def rules() -> RulesAnalyzer:
    return RulesAnalyzer()


def ctx(alertname: str, expr: str, severity: str = "critical", **labels: str) -> AlertContext:
    lab = {"alertname": alertname, "severity": severity, "container": "c1", "job": "svc",
           "instance": "c1:80", **labels}
    return AlertContext(incident_id="i", group_key="g", common_labels=lab, alerts=[{
        "labels": lab, "annotations": {"summary": alertname}, "status": "firing",
        "generator_url": f"http://p/graph?g0.expr={quote_plus(expr)}"}])


def docker(status: str = "running", health: str = "none", **extra: Any) -> Evidence:
    return Evidence(source="docker", name="c1", status=EvidenceStatus.OK, data={
        "container": "c1", "status": status, "health": health, "restart_count": 0,
        "exit_code": 137 if status == "exited" else 0, "oom_killed": False, **extra})


def prom(name: str, value: float) -> Evidence:
    return Evidence(source="prometheus", name=name, status=EvidenceStatus.OK,
                    data={"query": "q", "value": value})


TARGET = [ResolvedTarget(name="c1", via="label:container", verified=True)]


def kinds(rules: RulesAnalyzer, c: AlertContext, *evidence: Evidence) -> set[ActionKind]:
    return {a.kind for a in rules.analyse_sync(c, TARGET, list(evidence)).proposed_actions}


@pytest.mark.parametrize(("name", "expr"), [
    ("NginxDown", "nginx_up == 0"),
    ("HAProxyDown", "haproxy_up == 0"),
    ("GoAppUnresponsive", 'up{job="go-app"} == 0'),
    ("CheckoutServiceDown", 'up{job="checkout"} == 0'),
])
def test_a_stateless_service_that_says_down_is_restarted(rules: RulesAnalyzer, name: str,
                                                         expr: str) -> None:
    assert RESTART in kinds(rules, ctx(name, expr), docker())
    assert START in kinds(rules, ctx(name, expr), docker("exited"))


@pytest.mark.parametrize(("name", "expr"), [
    ("MySQLDown", "mysql_up == 0"), ("PostgresqlDown", "pg_up == 0"),
    ("RedisDown", "redis_up == 0"), ("RabbitMQNodeDown", "rabbitmq_up == 0"),
    ("ElasticsearchClusterRed", 'elasticsearch_cluster_health_status{color="red"} == 1'),
    ("MongoDBDown", "mongodb_up == 0"),
])
def test_a_stateful_service_is_started_when_exited_and_never_restarted(
        rules: RulesAnalyzer, name: str, expr: str) -> None:
    for state in (docker(), docker(health="unhealthy"), docker("restarting")):
        got = kinds(rules, ctx(name, expr), state)
        assert not got & CONTAINER_ACTIONS and ActionKind.ESCALATE in got, (name, state.data)
    assert kinds(rules, ctx(name, expr), docker("exited")) & CONTAINER_ACTIONS == {START}


def test_a_redis_memory_leak_is_not_restarted(rules: RulesAnalyzer) -> None:
    c = ctx("RedisHighMemoryUsage", "redis_memory_used_bytes / redis_memory_max_bytes > 0.9",
            name="c1")
    leak = [docker(), prom("query:memory_ratio", 0.97), prom("query:memory_growth_1h", 1e6)]
    assert not kinds(rules, c, *leak) & CONTAINER_ACTIONS
    web = ctx("ContainerHighMemoryUsage", "container_memory_usage_bytes > 1", name="c1")
    assert RESTART in kinds(rules, web, *leak)  # the same leak on a stateless container


@pytest.mark.parametrize(("name", "expr", "category"), [
    ("HostOutOfDiskSpace", "node_filesystem_avail_bytes < 1", Category.CAPACITY),
    ("BlackboxSslCertificateWillExpireSoon", "probe_ssl_earliest_cert_expiry - time() < 3",
     Category.SECURITY),
    ("HostClockSkew", "node_timex_offset_seconds > 0.05", Category.CONFIGURATION),
    ("HostRaidDiskFailure", "node_md_disks > 0", Category.AVAILABILITY),
    ("MySQLSlaveReplicationLag", "mysql_slave_status_seconds_behind_master > 30",
     Category.LATENCY),
    ("PrometheusConfigurationReloadFailure", "prometheus_config_last_reload_successful != 1",
     Category.CONFIGURATION),
    ("KubePodCrashLooping", "kube_pod_container_status_restarts_total > 0",
     Category.AVAILABILITY),
    ("SNMPInterfaceDown", "ifOperStatus != 1", Category.AVAILABILITY),
    ("HAProxyBackendDown", "haproxy_backend_up == 0", Category.AVAILABILITY),
    ("WidgetAuthFailuresHigh", "increase(widget_auth_failures_total[5m]) > 3",
     Category.SECURITY),
    # round 2: availability that a restart does not fix, and capacity without storage words
    ("LedgerFilesystemReadOnly", 'ledger_health{check="read_only"} > 0', Category.AVAILABILITY),
    ("StoreHighDiskFailures", "store_disk_failures_total > 0", Category.AVAILABILITY),
    ("ShardMirrorImagesOutOfSync", "shard_mirror_images_unsynced > 0", Category.AVAILABILITY),
    ("WidgetNodeHasRebooted", "widget_node_uptime_seconds < 600", Category.AVAILABILITY),
    ("MeshSubnetIpsExhausted", "mesh_ipam_ips_available <= 0", Category.CAPACITY),
    ("WidgetPoolGrowth", "predict_linear(widget_pool_used_ratio[2d], 432000) > 0.95",
     Category.CAPACITY),
])
def test_never_a_container_action_for_these(rules: RulesAnalyzer, name: str, expr: str,
                                            category: Category) -> None:
    for state in (docker(), docker(health="unhealthy")):
        d = rules.analyse_sync(ctx(name, expr), TARGET, [state])
        assert d.category == category, (name, d.runbook, d.match_reason)
        if state.data["health"] == "none" or category != Category.AVAILABILITY:
            assert not {a.kind for a in d.proposed_actions} & CONTAINER_ACTIONS, (name, d)
        assert d.proposed_actions, name  # still notify or escalate


def test_the_alert_value_fills_the_summary(rules: RulesAnalyzer) -> None:
    d = rules.analyse_sync(ctx("PostgresqlTooManyConnections", "pg_stat_activity_count > 90",
                               severity="warning"), TARGET, [docker(), prom("alert_expr", 93.25)])
    assert d.runbook == "postgres" and d.category == Category.SATURATION
    assert d.summary.endswith("(value 93.25)") and "PostgreSQL c1:80" in d.summary
    assert "max_connections" in d.probable_cause


@pytest.mark.parametrize(("name", "expr"), [
    ("WorkerScaledDown", "kube_deployment_status_replicas < 2"),
    ("AppSlowDown", "rate(app_requests_total[5m]) < 1"),
    ("ServiceStepDown", "app_leader_changes_total > 3"),
    ("ApiDownscaled", "app_replicas < app_replicas_desired"),
])
def test_down_that_is_no_outage_never_restarts_a_running_container(
        rules: RulesAnalyzer, name: str, expr: str) -> None:
    """'Scaled down', 'slow down', 'step down': the subject is not down; a restart of the
    running container cannot help."""
    from sre_agent.analysis.classifier import classify

    assert not classify(name, [expr]).down
    assert not kinds(rules, ctx(name, expr), docker()) & CONTAINER_ACTIONS
