"""Fast copies of monitoring/*.yml for the demo stack: same rules and routes, local addresses
and short timings."""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Timings of the fast copies (seconds).
SCRAPE_INTERVAL_S = 1
EVALUATION_INTERVAL_S = 1
GROUP_WAIT_S = 1
GROUP_INTERVAL_S = 5
FOR_MIN_S, FOR_MAX_S, FOR_DIVISOR = 2, 5, 6


# --- configuration derived from monitoring/*.yml --------------------------------------------

_DURATION_RE = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def parse_duration(text: str) -> float:
    """A Prometheus duration (``30s``, ``1m30s``, ``500ms``) in seconds."""
    text = str(text).strip()
    parts = _DURATION_RE.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"not a Prometheus duration: {text!r}")
    return float(sum(int(n) * _UNIT_S[u] for n, u in parts))


def fast_for(seconds: float) -> int:
    """The ``for`` of the fast copy: a sixth of the real one, clamped to 2..5 s
    (10 s → 2 s, 15 s → 2 s, 30 s → 5 s)."""
    return int(max(FOR_MIN_S, min(FOR_MAX_S, round(seconds / FOR_DIVISOR))))


def rename_job(expr: str, old: str, new: str) -> str:
    """``job="old"`` (and ``job=~"old"``) label matchers in a PromQL expression → ``new``."""
    return re.sub(r'(\bjob\s*=~?\s*")' + re.escape(old) + '"', lambda m: f'{m.group(1)}{new}"',
                  expr)


def fast_rules(source: Mapping[str, Any], overrides: Mapping[str, int] | None = None,
               jobs: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``alert_rules.yml`` with every ``for`` shortened (``overrides``: alert → seconds) and
    the job matchers renamed (``jobs``: old → new)."""
    rules = copy.deepcopy(dict(source))
    for group in rules.get("groups", []):
        for rule in group.get("rules", []):
            for old, new in (jobs or {}).items():
                if "expr" in rule and old != new:
                    rule["expr"] = rename_job(str(rule["expr"]), old, new)
            if "alert" not in rule:
                continue
            name = str(rule["alert"])
            if overrides and name in overrides:
                rule["for"] = f"{int(overrides[name])}s"
            elif "for" in rule:
                rule["for"] = f"{fast_for(parse_duration(rule['for']))}s"
    return rules


def rule_for_seconds(rules: Mapping[str, Any]) -> dict[str, float]:
    """alert name → its ``for`` in seconds (0 when it has none)."""
    return {str(r["alert"]): parse_duration(r["for"]) if "for" in r else 0.0
            for g in rules.get("groups", []) for r in g.get("rules", []) if "alert" in r}


def fast_prometheus_config(source: Mapping[str, Any], *, jobs: Mapping[str, list[str]],
                           alertmanager: str, rules_path: Path,
                           scrape_interval_s: int = SCRAPE_INTERVAL_S,
                           evaluation_interval_s: int = EVALUATION_INTERVAL_S,
                           rename: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``prometheus.yml`` with the addresses, the rule file and the intervals replaced. Jobs
    not in ``jobs`` are dropped (their compose host names do not resolve here); ``rename``
    (old → new job name) is applied first."""
    config = copy.deepcopy(dict(source))
    config["global"] = {**config.get("global", {}),
                        "scrape_interval": f"{scrape_interval_s}s",
                        "scrape_timeout": f"{scrape_interval_s}s",
                        "evaluation_interval": f"{evaluation_interval_s}s"}
    config["rule_files"] = [str(rules_path)]
    for manager in config.get("alerting", {}).get("alertmanagers", []):
        manager["static_configs"] = [{"targets": [alertmanager]}]
    scrape_configs = []
    for job in config.get("scrape_configs", []):
        name = (rename or {}).get(job.get("job_name"), job.get("job_name"))
        job["job_name"] = name
        if jobs.get(name):
            job["static_configs"] = [{"targets": list(jobs[name])}]
            scrape_configs.append(job)
    config["scrape_configs"] = scrape_configs
    return config


def fast_alertmanager_config(source: Mapping[str, Any], *, webhook_url: str,
                             credentials_file: Path, group_wait_s: int = GROUP_WAIT_S,
                             group_interval_s: int = GROUP_INTERVAL_S) -> dict[str, Any]:
    """``alertmanager.yml`` with the webhook URL, the credentials file and the timers replaced;
    every route and receiver is kept."""
    config = copy.deepcopy(dict(source))
    route = config.setdefault("route", {})
    route["group_wait"] = f"{group_wait_s}s"
    route["group_interval"] = f"{group_interval_s}s"
    for receiver in config.get("receivers", []):
        for hook in receiver.get("webhook_configs", []):
            hook["url"] = webhook_url
            auth = hook.setdefault("http_config", {}).setdefault("authorization", {})
            auth.pop("credentials", None)
            auth["type"] = auth.get("type", "Bearer")
            auth["credentials_file"] = str(credentials_file)
    return config
