"""The classifier's table: which words and metrics point to which category, and alert families.

General signals only (words of alert names, metric-name families, PromQL functions), never
lists of particular alert names: the classifier must hold on collections it has never seen.
A signal's ``source`` is ``name`` (the alert name's lower-case words, space-padded), ``expr``
(metric names | functions | the whole expression) or ``text`` (annotation words, half weight).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from sre_agent.domain.diagnosis import Category

A, E, L, S = Category.AVAILABILITY, Category.ERRORS, Category.LATENCY, Category.SATURATION
C, F, X = Category.CAPACITY, Category.CONFIGURATION, Category.SECURITY

# Ties go to the first: the categories where a wrong restart does most harm come first.
PRECEDENCE = [X, F, C, A, E, L, S, Category.UNKNOWN]


Source = Literal["name", "expr", "text"]


@dataclass(frozen=True)
class Signal:
    source: Source
    category: Category
    weight: float
    pattern: re.Pattern[str]


def _w(*words: str) -> str:
    return r"\b(?:" + "|".join(words) + r")\b"


_STORE = _w("disk", "disks", "filesystem", "filesystems", "fs", "volume", "volumes", "storage",
            "pvc", "tablespace", "ledger", "space", "partition", "data dir", "wal", "files",
            "hdfs", "brick", "bricks")
_FULL = _w("full", "fill", "fills", "filling", "space", "free", "avail\\w*", "usage", "used",
           "low", "out", "left", "capacity", "size(?! mismatch)", "utili[sz]ation",
           "exhaust\\w*", "watermark", "near\\w*", "almost", "critical", "high", "running out")

_TABLE: list[tuple[Source, Category, float, str]] = [
    # security: certificates first, then access
    ("name", X, 6, _w("cert", "certs", "certificate", "certificates", "x509", "ocsp", "acme",
                      "revoked")),
    ("name", X, 3, _w("ssl", "tls", "expir\\w*")),
    ("name", X, 4, _w("auth\\w*", "unauthori[sz]ed", "forbidden", "login", "logins",
                      "password\\w*", "brute", "intrusion", "threats?", "security",
                      "access denied", "denied", "tokens?", "vulnerab\\w*", "csr")),
    ("expr", X, 6, r"probe_ssl_|ssl_cert|x509_cert|cert_expir|certmanager_certificate|"
                   r"_certificate_expir|tls_cert|client_certificate"),
    ("expr", X, 3, r"auth\w*_(fail|error|denied)|_unauthori[sz]ed|login_fail"),
    # configuration, clocks
    ("name", F, 6, _w("clock", "clocks", "ntp", "chrony", "timex", "time skew", "time drift",
                      "time offset", "skew", "skewed")),
    ("name", F, 3.5, _w("config", "configs", "configuration", "reload", "reloads",
                        "reloading", "reloaded", "misconfig\\w*", "mismatch\\w*",
                        "inconsistent", "version", "versions", "deviations?", "outdated",
                        "deprecat\\w*", "duplicate", "invalid", "overrides", "drift",
                        "not synced", "settings?", "changed", "reboot",
                        "schema", "plugins?", "misscheduled", "mis scheduled",
                        "migrations?", "unapplied", "not applied", "multiple running",
                        "more than one running", "singleton", "disabled", "is enabled")),
    ("expr", F, 5, r"config_last_reload|reload_config|config_reload|configuration_reload|"
                   r"config_hash|config_success|_reload_success|last_reload"),
    ("expr", F, 6, r"timex_|node_time_seconds|clock_|_ntp_"),
    ("expr", F, 2, r"build_info|_version\b|count_values"),
    # capacity: storage filling up, quotas, planning
    ("name", C, 5, _STORE + r"(?! io\b)(?: \w+){0,3}? " + _FULL),  # "disk io" is not space
    ("name", C, 6, _w("out of (?:disk|space|inodes|files)", "inodes?", "quotas?",
                      "overcommit\\w*", "disk space", "watermark", "will fill",
                      "may fill", "predicted (?:disk|low disk)", "no space")),
    ("name", C, 7, _w("underutili[sz]ed", "under utili[sz]ed", "over ?provision\\w*",
                      "waste\\w*", "unused", "idle", "low cpu", "low memory", "spend",
                      "cost")),
    ("name", C, 3, _w("near ?full", "nearly full", "almost full", "backfill full")),
    ("name", C, 4, _w("capacity", "will be full", "fill up", "fills up", "full in")),
    # address pools: IPs and subnets running out
    ("name", C, 5, r"\b(?:low|free|available|exhaust\w*|run\w* out)(?: \w+){0,3}? "
                   r"(?:ips|ipam|ip addresses|subnets?)\b|\b(?:ipam|ips|ip addresses|subnets?)"
                   r"(?: \w+){0,3}? (?:exhaust\w*|low|full|used up)\b"),
    ("expr", C, 4, r"\bpredict_linear\b|_capacity_(?:used|free|avail|remaining|bytes)|"
                   r"capacity(?:remaining|used|free)"),
    ("expr", C, 5, r"node_filesystem_(?:avail|free|size|files)|kubelet_volume_stats|"
                   r"_fs_(?:avail|free|size|usage|used|limit)|disk_(?:free|avail|used|usage|"
                   r"total|size)|_storage_(?:free|avail|used|capacity|size)|filesystem_|"
                   r"volume_(?:free|avail|used|capacity|size)|tablespace|resourcequota|"
                   r"_bytes_free|free_bytes|_space_|_inodes|quota_"),
    # availability: down, missing, crash loops, quorum, hardware
    ("name", A, 5, _w("down", "unreachable", "unavailable", "unhealthy", "outage", "offline",
                      "dead", "died", "crash\\w*", "deadlocked",
                      "not (?:up|live|running|ready|healthy|"
                      "online|active|available|alive|responding|connected|reachable|"
                      "scheduled|started|registered|attached|ok|quorate|assigned)",
                      "notready", "no (?:leader|master|masters|primary|quorum|healthy|"
                      "alive|live|available|active|nodes?|consumers?|targets?|backends?|"
                      "members?|replicas?|workers?|task managers?|upstream|connection|"
                      "evaluations?)", "flapping", "flaps", "killed", "exited", "stopped",
                      "halted", "hung", "hang", "stuck", "lost", "gone", "failover",
                      "disconnected", "deadman\\w*", "dead man\\w*", "heartbeat", "sealed",
                      "zombies?", "split brain", "partitioned", "without leader",
                      "unassigned", "missing", "absent", "not running", "inactive",
                      "degraded", "failed peers", "replication broken", "link broken",
                      "(?:members|peers|replicas) (?:inconsistent|mismatch\\w*)",
                      "(?:container|containers|pod|pods) (?:waiting|pending)",
                      "(?:service|services|unit|units|daemon|process|processes) failed")),
    ("name", A, 4, _w("restarts?", "restarted", "restarting", "leader\\w*", "quorum\\w*",
                      "red", "yellow", "readiness", "replicas", "isr", "under replicated",
                      "empty", "insufficient", "in error state", "not enough", "power off",
                      "uptime", "rebooted", "has rebooted", "pending pods?", "unschedulable",
                      "lagging behind",
                      "rollout", "availability", "healthcheck", "probe failed")),
    ("name", A, 2, _w("status", "state", "health")),
    ("name", A, 5, _w("(?:disk|disks|drive|drives|volume|volumes|device|devices|network|"
                      "interface|interfaces|nic|nics) "
                      "(?:failures?|failed|faults?)", "failed (?:disks?|drives?|volumes?|devices?)",
                      "read ?only", "readonly", "not in sync", "out of sync",
                      "scheduling disabled")),
    ("name", A, 4, _w("not (?:ingesting|processing|receiving|consuming|serving)",
                      "no new", "no (?:data|samples|records|documents|traffic|messages)")),
    ("name", A, 5, _w("raid", "edac", "smart", "ipmi", "hardware", "temperature",
                      "overtemperature", "too hot", "fans?", "voltage", "power supply",
                      "battery", "psu", "sensor", "sectors?", "wearout", "cooling", "chassis",
                      "thermal", "drive fault", "media errors", "ups", "ac input")),
    ("expr", A, 5, r"(?:^|[^\w])up\s*(?:\{[^}]*\})?\s*(?:==\s*0|<\s*1|!=\s*1)|"
                   r"\w_up\s*(?:\{[^}]*\})?\s*(?:==\s*0|<\s*1|!=\s*1)|\babsent(?:_over_time)?"
                   r"\s*\(|probe_success\s*(?:\{[^}]*\})?\s*(?:==\s*0|<\s*1)|"
                   r"_health\w*\s*(?:\{[^}]*\})?\s*(?:==\s*0|<\s*1|!=\s*1)"),
    ("expr", A, 2, r"restarts_total|restart_count|_restarts\b|status_phase|_ready\b|"
                   r"_unavailable|replicas_available|_leader|_quorum|up_time|_uptime|"
                   r"_alive|members|_peers\b|node_systemd_unit_state|_online|kube_node_status_condition"),
    # errors
    ("name", E, 3, _w("errors?", "errs?", "fail", "fails", "failed", "failing", "failures?",
                      "exceptions?", "panics?", "reject\\w*", "refus\\w*", "drop\\w*",
                      "corrupt\\w*", "timeouts?", "timed out", "retry", "retries",
                      "deadlocks?", "dead locks", "rollbacks?", "[45] ?xx", "servfail",
                      "broken", "unroutable", "dead letter", "aborted", "conflicts?",
                      "success rate", "lost (?:events|spans|messages)", "discard\\w*",
                      "blocked", "errored", "bad", "misses", "missed", "skipped", "nacks?",
                      "unacked", "uncollectable", "not completed", "circuit breaker",
                      "tripped", "evaluation failures")),
    ("name", E, 6, _w("dead ?locks?", "not backed up")),
    ("name", E, 4, _w("backups?", "backed up")),
    # a failure word on a countable thing: the count is of failures, not of load
    ("name", E, 5, _w("(?:rejected|dropped|failed|refused|aborted|terminated|discarded|"
                      "invalid|timed out) (?:\\w+ ){0,2}?(?:sessions?|connections?|requests?|"
                      "messages?|queries|query|writes|reads|packets|samples|spans|events|"
                      "jobs|tasks|responses?|calls|runs?|collections?|operations?|attempts?)",
                      "incorrect", "wrong", "unshipped")),
    ("name", E, 4, _w("(?:has|have) not (?:successfully )?(?:run|ran|shipped|uploaded|updated|"
                      "synced|sync|completed|triggered|cleaned|scan|scanned|compacted|"
                      "flushed|been \\w+)", "never (?:run|ran|shipped|uploaded)",
                      "not (?:shipped|uploaded|run|updated|cleaning|cleaned|compacting)")),
    ("expr", E, 3, r"errors?|_errs|_failed|_failures?|_fail\b|_fails_|exception|panic|"
                   r"rejected|dropped|_drops|refused|timeouts?|"
                   r"(?:code|status|status_code|response_code)\s*=~?\s*\"[45]|5xx|4xx|"
                   r"_retries|deadlock|rollback|corrupt|discarded|duplicates?_total|"
                   r"out_of_order|(?:result|outcome)\s*=~?\s*\"(?:fail|failed|failure|error)"),
    # latency
    ("name", L, 3, _w("latency", "latencies", "slow\\w*", "duration", "durations",
                      "response time", "lag", "lags", "lagging", "delay\\w*", "behind",
                      "wait", "waiting", "long", "too long", "p9\\d", "percentile",
                      "backpressure\\w*", "backpressured", "stale", "took",
                      "seconds behind", "round trip", "rtt", "age too old", "too old",
                      "jitter", "ping", "stall\\w*",
                      "(?:scrape|query|queries|request|response|processing|execution|"
                      "evaluation|render|rendering|commit|flush|compaction|reconcile|"
                      "reconciliation|sync|write|read|fsync|handshake) times?")),
    ("expr", L, 4, r"_duration_seconds|_latency|histogram_quantile|_lag\b|_lag_|_lag\w*|"
                   r"seconds_behind|_delay|response_time|_wait_|_rtt|_age_seconds|"
                   r"_time_seconds_(?:sum|bucket)|_time_ms\b|_duration_ms|_latency_ms"),
    # saturation: a resource in use near its limit right now
    ("name", S, 3, _w("cpu", "cpus", "vcpu\\w*", "memory", "mem", "heap", "rss", "swap",
                      "load", "iowait", "io wait", "steal", "throttl\\w*", "saturat\\w*",
                      "pressure", "utili[sz]\\w*", "goroutines?", "threads?", "gc",
                      "garbage", "file descriptors?", "fds?", "descriptors",
                      "connections?", "sessions?", "conntrack", "queues?", "queued",
                      "backlog", "pending", "in flight", "inflight", "workers", "pool",
                      "exhaust\\w*", "overload\\w*", "bandwidth", "throughput", "traffic",
                      "context switch\\w*", "nat table", "table full", "processes",
                      "cores", "buffers?", "allocation", "cardinality", "series",
                      "request rate", "query rate", "rate limit\\w*", "limit hit",
                      "io", "busy", "churn", "maxed", "max children", "calls",
                      "messages", "ready messages", "clients", "slots",
                      "shards", "tasks", "fragmentation", "map pressure", "oom",
                      "evict\\w*")),
    ("name", S, 2.5, _w("too many")),
    ("name", S, 1.5, _w("network")),
    ("name", S, 1, _w("usage", "high", "too large", "max", "limit", "limits",
                      "spike", "spikes", "large", "growing", "growth", "increasing",
                      "rising", "near limit", "reaching limit", "count high")),
    ("name", S, 6, _w("oom", "oom kill\\w*", "out of memory", "memory leak", "leak")),
    ("expr", S, 2, r"cpu|memory|_mem_|memstats|heap|_rss|swap|load1|load5|load15|throttl|"
                   r"goroutines|threads|open_fds|max_fds|file_descriptors|connections|"
                   r"conntrack|queue|backlog|pending|inflight|in_flight|sessions|_oom|"
                   r"network_(?:receive|transmit)_bytes|_io_time|io_seconds|pressure"),
]

SIGNALS = [Signal(src, cat, w, re.compile(pat)) for src, cat, w, pat in _TABLE] + [
    # Annotation words count half; clock words there are too often "wall clock time".
    Signal("text", cat, w, re.compile(pat)) for src, cat, w, pat in _TABLE
    if src == "name" and "clock" not in pat]

# A family: (name prefix, matched on the alert name's joined lower-case words; metric prefix).
FAMILIES: dict[str, tuple[re.Pattern[str], re.Pattern[str] | None]] = {
    name: (re.compile(n), re.compile(m) if m else None) for name, n, m in [
        ("kubernetes", r"kube|k8s|kubernetes|cputhrottlinghigh",
         r"\b(?:kube_|kubelet_|apiserver_|kubeproxy_|scheduler_|workqueue_|rest_client_)"),
        ("container", r"container|docker|cadvisor", r"\bcontainer_"),
        ("blackbox", r"blackbox|probe|ssl|https?probe|icmp|dnsprobe",
         r"\bprobe_|\bssl_"),
        ("mysql", r"mysql|mariadb|galera", r"\bmysql_"),
        ("postgres", r"postgres|pgbouncer|patroni|pg(?=[a-z])", r"\b(?:pg_|pgbouncer_|patroni_)"),
        ("redis", r"redis", r"\bredis_"),
        ("mongodb", r"mongo", r"\bmongodb_"),
        ("elasticsearch", r"elasticsearch|elastic|opensearch",
         r"\b(?:elasticsearch_|opensearch_)"),
        ("rabbitmq", r"rabbit", r"\brabbitmq_"),
        ("kafka", r"kafka", r"\bkafka_"),
        ("zookeeper", r"zookeeper", r"\bzk_|\bzookeeper_"),
        ("etcd", r"etcd", r"\betcd_"),
        ("nginx", r"nginx", r"\bnginx_"),
        ("haproxy", r"haproxy", r"\bhaproxy_"),
        ("traefik", r"traefik", r"\btraefik_"),
        ("jvm", r"jvm|java|tomcat", r"\bjvm_"),
        ("go", r"go(?!ogle|ssip)(?=[a-z])", r"\bgo_(?:goroutines|memstats|gc|threads)"),
        ("python", r"python", r"\bpython_"),
        ("alertmanager", r"alertmanager", r"\balertmanager_"),
        ("prometheus", r"prometheus(?!operator)|promscale", r"\bprometheus_(?!operator)"),
        ("loki", r"loki|promtail", r"\b(?:loki_|promtail_)"),
        ("thanos", r"thanos", r"\bthanos_"),
        ("mimir", r"mimir|cortex", r"\b(?:cortex_|mimir_)"),
        ("grafana", r"grafana(?!alloy|tempo|mimir|loki)", r"\bgrafana_"),
        ("node", r"host|node(?!js)|windows|linux|systemd", r"\bnode_|\bwindows_"),
        ("datastore", r"cassandra|clickhouse|ceph|minio|couch|consul|nats|pulsar|memcache|"
                      r"solr|oracle|sqlserver|mssql|hadoop|hdfs|hbase|zfs|openebs|influx|"
                      r"cockroach|vault|scylla|riak|couchbase|aerospike|tidb|vitess|"
                      r"gluster|longhorn|rook|nsq|activemq|ibmmq|artemis|neo4j|druid|tempo",
         r"\b(?:cassandra_|clickhouse_|ceph_|minio_|couchdb_|consul_|nats_|pulsar_|"
         r"memcached_|solr_|oracledb_|mssql_|hadoop_|zfs_|influxdb_|cockroach|vault_)"),
    ]
}

# Families that keep state: a restart of a running one risks data and lengthens the outage.
STATEFUL = frozenset({"mysql", "postgres", "redis", "mongodb", "elasticsearch", "rabbitmq",
                      "kafka", "zookeeper", "etcd", "loki", "thanos", "mimir",
                      "datastore"})

# The alert says its subject is down (used with category availability only).
DOWN_WORDS = re.compile(_w("down", "unreachable", "unavailable", "unhealthy", "dead", "died",
                           "crash\\w*", "hung", "hang", "unresponsive", "killed", "exited",
                           "stopped", "offline", "not (?:up|live|running|responding|healthy|"
                           "alive|reachable)", "no healthy"))
DOWN_EXPR = re.compile(r"(?:^|[^\w])up\s*(?:\{[^}]*\})?\s*(?:==\s*0|<\s*1|!=\s*1)|"
                       r"\w_up\s*(?:\{[^}]*\})?\s*(?:==\s*0|<\s*1|!=\s*1)|"
                       r"probe_success\s*(?:\{[^}]*\})?\s*(?:==\s*0|<\s*1)")
# "down" that is no outage: scaling, slowing, sampling, stepping down. A restart never helps.
NOT_DOWN = re.compile(r"\b(?:scal\w*|slow\w*|step\w*|cool\w*|count\w*|wind\w*) down\b|"
                      r"\bdown ?(?:scal\w*|sampl\w*|grad\w*|stream\w*|load\w*|time)\b")
# Down, yet not something a container restart fixes: links, hardware, replication, networks.
NOT_RESTARTABLE = re.compile(_w(
    "link", "links", "interface", "interfaces", "switch", "bond", "bonding", "network",
    "replica\\w*", "replication", "slaves?", "masters?", "raid", "disk", "disks", "drive",
    "power", "battery", "ups", "sensor", "chassis", "fan", "cluster", "quorum", "leader",
    "peer", "peers", "member", "members", "shard", "shards", "partition\\w*", "volume",
    "pool", "storage", "node", "nodes", "droplet", "vm", "hypervisor", "load balancer",
    "certificate", "cert", "ssl", "tls", "clock", "config\\w*", "backup", "database", "db",
    "broker", "datastore", "namespace", "pod", "pods", "deployment", "daemon set",
    "stateful set", "job", "cron job", "hpa", "pvc", "api server", "apiserver", "kubelet",
    "scheduler", "controller manager", "upstream", "upstreams", "backend", "backends",
    "server", "servers", "target", "targets", "endpoint", "endpoints", "instance",
    "instances"))
