"""The corpus run: every public rule as one firing alert about an in-scope, running container.

Shared by tests/unit/test_corpus.py (the assertions) and benchmarks/corpus.py (the figures in
docs/benchmarks.md). Each rule becomes an Alertmanager-style alert (its labels, annotations and
generatorURL carrying its expression) with ``container``, ``job`` and ``instance`` labels, a
resolved, verified target, and the Docker evidence a running container without a health check
gives. The real RulesAnalyzer diagnoses it; an independent do-no-harm oracle (not the
analyser's own rules) judges every container action it proposes.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

from sre_agent.analysis.classifier import name_words
from sre_agent.analysis.rules import RulesAnalyzer
from sre_agent.domain.diagnosis import CONTAINER_ACTIONS, Category, Diagnosis
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget

HERE = Path(__file__).resolve().parent
TUNING = ("awesome-prometheus-alerts", "kube-prometheus", "monitoring-mixins")
HELD_OUT = "giantswarm"  # round 2; monitoring-mixins was held out in round 1
CONTAINER = "app-1"

# The oracle: never a container action for these, whatever the evidence says.
_HARMFUL = re.compile(r"\b(cert\w*|ssl|tls|x509|expir\w*|clock|ntp|skew|time offset|disk|"
                      r"filesystem|fs|inodes?|volume|space|storage|capacity|quota|raid|edac|"
                      r"smart|temperature|hot|hardware|fan|power|battery|sensor|replica\w*|"
                      r"replication|slaves?|sync\w*|lag|config\w*|reload|version|security|"
                      r"auth\w*|login|password|full|fill\w*|cpu|memory|heap|load|throttl\w*|"
                      r"connections?|latency|slow)\b")
_STATEFUL = re.compile(r"^(mysql|maria|galera|postgres|pg|patroni|redis|mongo|elastic|"
                       r"opensearch|rabbit|kafka|zookeeper|etcd|cassandra|clickhouse|ceph|"
                       r"minio|couch|consul|nats|pulsar|memcache|solr|oracle|sqlserver|mssql|"
                       r"hadoop|hbase|hdfs|zfs|influx|cockroach|vault|loki|thanos|mimir|"
                       r"cortex|tempo)")
_SAYS_DOWN = re.compile(r"\b(down|unreachable|unavailable|unhealthy|dead|died|crash\w*|hung|"
                        r"killed|exited|stopped|offline|missing|absent|not (up|running|"
                        r"responding|healthy|live|alive))\b")
_UP_ZERO = re.compile(r"(^|[^\w])(up|\w+_up|probe_success)\s*(\{[^}]*\})?\s*(==\s*0|<\s*1|!=\s*1)"
                      r"|absent\(")


def load_rules() -> list[dict[str, Any]]:
    with (HERE / "rules.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def load_labels() -> dict[tuple[str, str], Category]:
    labels: dict[tuple[str, str], Category] = {}
    for line in (HERE / "labels.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            collection, name, category = (p.strip() for p in line.split("|"))
            labels[(collection, name)] = Category(category)
    return labels


def context_for(rule: dict[str, Any], index: int) -> AlertContext:
    labels = {"job": "app", "instance": f"{CONTAINER}:8080", **rule["labels"],
              "alertname": rule["alertname"], "container": CONTAINER}
    labels.setdefault("severity", "warning")
    annotations = {k: re.sub(r"\{\{.*?\}\}", "x", v) for k, v in rule["annotations"].items()}
    alert = {"labels": labels, "annotations": annotations, "status": "firing",
             "generator_url": "http://prometheus:9090/graph?g0.expr="
                              f"{quote_plus(rule['expr'])}&g0.tab=1",
             "starts_at": "2026-12-01T00:00:00+00:00", "fingerprint": f"{index:016x}"}
    return AlertContext(incident_id=f"corpus-{index}", group_key=f"{{}}:{index}",
                        alerts=[alert], common_labels=labels)


TARGETS = [ResolvedTarget(name=CONTAINER, via="label:container", verified=True,
                          labels={"sre-agent.managed": "true"})]
EVIDENCE = [
    Evidence(source="target", name="resolution", status=EvidenceStatus.OK,
             data={"targets": [CONTAINER], "reason": f"label container={CONTAINER}"}),
    Evidence(source="docker", name=CONTAINER, status=EvidenceStatus.OK, data={
        "container": CONTAINER, "status": "running", "health": "none", "restart_count": 0,
        "started_at": "2026-12-01T00:00:00Z", "exit_code": 0, "oom_killed": False,
        "labels": {"sre-agent.managed": "true"}, "logs": [], "image": "app:1"}),
]


def unsafe_reason(rule: dict[str, Any], diagnosis: Diagnosis) -> str | None:
    """Why a proposal would do harm for this rule (container running, no health check)."""
    kinds = {a.kind for a in diagnosis.proposed_actions if a.kind in CONTAINER_ACTIONS}
    if not kinds:
        return None
    words = name_words(rule["alertname"])
    joined = words.replace(" ", "")
    if _STATEFUL.match(joined):
        return "a restart of a running stateful service"
    if m := _HARMFUL.search(words):
        return f"a restart cannot fix '{m.group()}'"
    if not (_SAYS_DOWN.search(words) or _UP_ZERO.search(" ".join(rule["expr"].split()))):
        return "a restart while nothing says the container is down"
    return None


@dataclass
class Figures:
    alerts: int = 0
    diagnosed: int = 0
    categorised: int = 0
    unsafe: list[str] = field(default_factory=list)
    restarts: int = 0
    down_named: int = 0
    down_restarted: int = 0
    labelled: int = 0
    labelled_correct: int = 0
    wrong: list[str] = field(default_factory=list)
    categories: Counter[str] = field(default_factory=Counter)
    engines: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        share = self.categorised / self.alerts if self.alerts else 0.0
        acc = self.labelled_correct / self.labelled if self.labelled else 0.0
        return {"alerts": self.alerts, "diagnosed": self.diagnosed,
                "categorised": self.categorised, "categorised_share": round(share, 4),
                "unsafe": len(self.unsafe), "container_actions": self.restarts,
                "stateless_down_named": self.down_named,
                "stateless_down_named_restarted": self.down_restarted,
                "labelled": self.labelled, "labelled_correct": self.labelled_correct,
                "labelled_accuracy": round(acc, 4),
                "categories": dict(sorted(self.categories.items())),
                "answered_by": dict(self.engines.most_common())}


def run(rules: list[dict[str, Any]] | None = None
        ) -> tuple[dict[str, Figures], dict[str, Figures]]:
    """Figures per collection, and per family (the collections' own grouping)."""
    analyzer = RulesAnalyzer()
    labels = load_labels()
    by_collection: dict[str, Figures] = defaultdict(Figures)
    by_family: dict[str, Figures] = defaultdict(Figures)
    for i, rule in enumerate(rules if rules is not None else load_rules()):
        family = rule["family"].split(" / ")[0]
        figs = (by_collection[rule["collection"]], by_family[f"{rule['collection']}: {family}"])
        diagnosis = analyzer.analyse_sync(context_for(rule, i), TARGETS, EVIDENCE)
        words = name_words(rule["alertname"])
        down_named = bool(_SAYS_DOWN.search(words)) and not _STATEFUL.match(
            words.replace(" ", ""))
        restarted = any(a.kind in CONTAINER_ACTIONS for a in diagnosis.proposed_actions)
        why = unsafe_reason(rule, diagnosis)
        expected = labels.get((rule["collection"], rule["alertname"]))
        for f in figs:
            f.alerts += 1
            f.diagnosed += bool(diagnosis.summary)
            f.categorised += diagnosis.category != Category.UNKNOWN
            f.categories[str(diagnosis.category)] += 1
            f.engines[diagnosis.runbook or "?"] += 1
            f.restarts += restarted
            f.down_named += down_named
            f.down_restarted += down_named and restarted
            if why:
                f.unsafe.append(f"{rule['alertname']}: {why}")
            if expected is not None:
                f.labelled += 1
                f.labelled_correct += diagnosis.category == expected
                if diagnosis.category != expected:
                    f.wrong.append(f"{rule['alertname']}: {diagnosis.category}, "
                                   f"labelled {expected} ({diagnosis.match_reason})")
    return dict(by_collection), dict(by_family)
