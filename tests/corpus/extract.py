"""Rebuild tests/corpus/rules.jsonl from local git mirrors of the public rule collections.

    .venv/bin/python tests/corpus/extract.py MIRRORS_DIR

MIRRORS_DIR holds bare clones named owner+name/repo (as the search tool's ``fetch`` leaves
them). Only the rules are kept: collection, family (the collection's own grouping), alert name,
expression, labels and annotations. Sources, commits and licences: tests/corpus/README.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
SOURCES = {  # collection -> (mirror, commit)
    "awesome-prometheus-alerts": ("samber+awesome-prometheus-alerts",
                                  "a8533189af0246de5e21a6d8d25bd37816894f07"),
    "kube-prometheus": ("prometheus-operator+kube-prometheus",
                        "4d719f1dea8853540b3823ab1fbe6be74a9953b3"),
    "monitoring-mixins": ("monitoring-mixins+website", "f901a79157f44b141be219b8887a34e4a96212fa"),
    "giantswarm": ("giantswarm+prometheus-rules", "afa44580544e5c7cadfbe297730e36c987343be9"),
}
TUNING = ("awesome-prometheus-alerts", "kube-prometheus")
# Held out in round 2: labelled before the classifier ever ran on them (tests/corpus/README.md).
HELD_OUT_2 = ("giantswarm",)
_HELM_ESCAPED = re.compile(r"\{\{`(.*?)`\}\}", re.S)
_HELM_LINE = re.compile(r"\s*\{\{-?.*?-?\}\}\s*")
_HELM_INLINE = re.compile(r"\{\{-?(?!\s*(?:\$labels|\$value\b|\.Labels|\.Value\b|"
                          r"\$externalLabels|printf|humanize))[^{}]*?-?\}\}")


def git(mirror: Path, *args: str) -> str:
    return subprocess.run(["git", "--git-dir", str(mirror), *args], check=True,
                          capture_output=True, text=True).stdout


def camel(name: str) -> str:  # the collection's own toCamelCase (site/src/data/rules.ts)
    return "".join(w[:1].upper() + w[1:] for w in name.split())


def awesome(mirror: Path, commit: str) -> list[dict[str, Any]]:
    doc = yaml.safe_load(git(mirror, "show", f"{commit}:_data/rules.yml"))
    out = []
    for group in doc["groups"]:
        for service in group["services"]:
            for exporter in service.get("exporters") or []:
                for rule in exporter.get("rules") or []:
                    out.append({"family": f"{service['name']} / {exporter.get('slug', '')}",
                                "alertname": camel(rule["name"]), "expr": str(rule["query"]),
                                "labels": {"severity": str(rule.get("severity", "warning"))},
                                "annotations": {
                                    "summary": f"{rule['name']} (instance "
                                               "{{ $labels.instance }})",
                                    "description": f"{rule.get('description', '')}\n  VALUE = "
                                                   "{{ $value }}\n  LABELS = {{ $labels }}"}})
    return out


def helm_plain(text: str) -> str:
    """A Helm template as plain YAML: escaped Prometheus templates kept, Helm directives
    dropped (both branches of an ``if`` stay; duplicates are removed by name later)."""
    text = _HELM_ESCAPED.sub(r"\1", text)
    text = "\n".join(line for line in text.splitlines() if not _HELM_LINE.fullmatch(line))
    return _HELM_INLINE.sub("X", text)


def rule_files(mirror: Path, commit: str, pattern: str, suffix: str,
               family_of: Any, helm: bool = False, contains: str = "") -> list[dict[str, Any]]:
    out = []
    for path in git(mirror, "ls-tree", "-r", "--name-only", commit).split():
        if not (path.startswith(pattern) and path.endswith(suffix) and contains in path):
            continue
        text = git(mirror, "show", f"{commit}:{path}")
        doc = yaml.safe_load(helm_plain(text) if helm else text) or {}
        groups = (doc.get("spec") or doc).get("groups") or []
        for group in groups:
            for rule in group.get("rules") or []:
                if "alert" not in rule:
                    continue
                out.append({"family": family_of(path, group), "alertname": rule["alert"],
                            "expr": str(rule["expr"]).strip(),
                            "labels": {k: str(v) for k, v in (rule.get("labels") or {}).items()},
                            "annotations": {k: str(v) for k, v in
                                            (rule.get("annotations") or {}).items()}})
    return out


def main(mirrors: Path) -> None:
    rows: list[dict[str, Any]] = []
    for collection, (name, commit) in SOURCES.items():
        mirror = mirrors / name / "repo"
        if collection == "awesome-prometheus-alerts":
            found = awesome(mirror, commit)
        elif collection == "kube-prometheus":
            found = rule_files(mirror, commit, "manifests/", "prometheusRule.yaml",
                               lambda p, g: f"{Path(p).stem.removesuffix('-prometheusRule')} / "
                                            f"{g['name']}")
        elif collection == "giantswarm":
            found = rule_files(mirror, commit, "helm/prometheus-rules/templates/", "rules.yml",
                               lambda p, g: Path(p).name.split(".")[0], helm=True,
                               contains="/alerting-rules/")
        else:
            found = [r for r in rule_files(mirror, commit, "assets/", "alerts.yaml",
                                           lambda p, g: Path(p).parent.name)
                     if Path(r["family"]).name]
        rows += [{"collection": collection, **r} for r in found]
    # Each later collection drops alerts whose name an earlier one already has; the round-2
    # collections also drop their own repeats (Helm branches, per-provider variants).
    seen: set[str] = set()
    kept = []
    for collection in SOURCES:
        mine = [r for r in rows if r["collection"] == collection]
        for r in mine:
            if collection in TUNING or r["alertname"] not in seen:
                kept.append(r)
                if collection in HELD_OUT_2:
                    seen.add(r["alertname"])
        seen |= {r["alertname"] for r in mine}
    rows = kept
    with (HERE / "rules.jsonl").open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=False) + "\n")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["collection"]] = counts.get(r["collection"], 0) + 1
    print(counts)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
