"""The alert classifier: a category for any alert, from its name, expression and annotations.

Deterministic and explained. It reads the alert name's words (CamelCase split), the metric names
and functions of the rule's expression, and the annotation text and ``runbook_url``; each source
is scored against one table of signals (`classifier_signals.py`) and the best-scoring category
wins. The result says which words or metrics decided. Alert text is data for classification
only: it is matched against fixed patterns, never followed, executed or echoed beyond the words
that matched.

It also names the alert's family (mysql, kafka, node, ...) from the name or the metric
prefixes, whether that family keeps state (databases, brokers, storage), and whether the alert
says its subject is down. Runbooks use these through the ``classified:`` condition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from sre_agent.analysis.classifier_signals import (
    DOWN_EXPR,
    DOWN_WORDS,
    FAMILIES,
    NOT_DOWN,
    NOT_RESTARTABLE,
    PRECEDENCE,
    SIGNALS,
    STATEFUL,
    Signal,
)
from sre_agent.domain.diagnosis import Category

__all__ = ["Classification", "classify", "name_words"]

_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_TEMPLATE = re.compile(r"\{\{.*?\}\}", re.S)
# A URL's scheme and host say nothing about the alert ("thanos.io", "runbooks.example.com").
_IO = re.compile(r"\bI/O\b", re.I)
_URL_HOST = re.compile(r"\b[a-z][a-z0-9+.-]*://[^/\s]*", re.I)
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right", "and",
                       "or", "unless", "bool", "offset", "inf", "nan", "time", "vector",
                       "scalar"})
_RANGES = re.compile(r"\[[^\]]*\]|\boffset\s+-?[0-9a-z]+")
_CLAUSES = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_AGGREGATIONS = frozenset({"sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk",
                           "bottomk", "quantile", "count_values", "group", "limitk"})
_WEIGHT = {"name": 1.0, "expr": 1.0, "text": 0.4}
_MAX_TEXT = 2000


@dataclass(frozen=True)
class Classification:
    category: Category
    confidence: float
    reason: str
    family: str | None = None
    stateful: bool = False
    down: bool = False
    matched: tuple[str, ...] = field(default=())


def name_words(alertname: str) -> str:
    """``MysqlTooManyConnections(>80%)`` -> ``" mysql too many connections 80 "``."""
    return " " + " ".join(w.lower() for w in _CAMEL.findall(alertname)) + " "


def expr_parts(expr: str) -> tuple[str, str]:
    """The metric names (space-separated, padded) and the functions of a PromQL expression."""
    bare = _MATCHERS.sub(" ", _STRINGS.sub(" ", re.sub(r"#[^\n]*", " ", expr)))
    bare = _CLAUSES.sub(" ", _RANGES.sub(" ", bare))
    metrics: list[str] = []
    functions: list[str] = []
    for m in _IDENT.finditer(bare):
        word, rest = m.group(), bare[m.end():].lstrip()
        if word.lower() in _KEYWORDS:
            continue
        is_function = rest.startswith("(") or word in _AGGREGATIONS
        (functions if is_function else metrics).append(word)
    return " " + " ".join(metrics) + " ", " " + " ".join(functions) + " "


def _text_words(annotations: dict[str, str]) -> str:
    parts = []
    for key, value in annotations.items():
        if key in ("summary", "description", "message", "runbook_url", "runbook"):
            text = _URL_HOST.sub(" ", _TEMPLATE.sub(" ", str(value)[:_MAX_TEXT]))
            text = _IO.sub("io", text)
            text = re.sub(r"\b(VALUE|LABELS)\s*=", " ", text)
            parts.append(" ".join(w.lower() for w in re.findall(r"[A-Za-z]+|\d+", text)))
    return " " + " ".join(parts) + " "


def _family(words: str, metrics: str) -> str | None:
    joined = words.replace(" ", "")
    for family, (name_re, _) in FAMILIES.items():
        if name_re.match(joined):
            return family
    for family, (_, metric_re) in FAMILIES.items():
        if metric_re is not None and metric_re.search(metrics):
            return family
    return None


def _score(sources: dict[str, str]) -> tuple[dict[Category, float], dict[Category, list[str]]]:
    scores: dict[Category, float] = {}
    why: dict[Category, list[str]] = {}
    for sig in SIGNALS:
        text = sources.get(sig.source, "")
        if not text.strip():
            continue
        m = sig.pattern.search(text)
        if m is None:
            continue
        scores[sig.category] = scores.get(sig.category, 0.0) + sig.weight * _WEIGHT[sig.source]
        why.setdefault(sig.category, []).append(_cite(sig, m.group().strip(" |")))
    return scores, why


def _cite(sig: Signal, hit: str) -> str:
    kind = {"name": "name words", "expr": "expression", "text": "annotation words"}[sig.source]
    return f"{kind} '{hit[:60]}'"


@lru_cache(maxsize=4096)
def _classify(alertname: str, expr: str, text: str) -> Classification:
    words = name_words(alertname)
    metrics, functions = expr_parts(expr) if expr else (" ", " ")
    sources = {"name": words, "expr": metrics + "|" + functions + "|" + " ".join(expr.split()),
               "text": text}
    scores, why = _score(sources)
    family = _family(words, metrics)
    down = (bool(DOWN_WORDS.search(words)) or bool(expr and DOWN_EXPR.search(" ".join(
        expr.split())))) and not NOT_RESTARTABLE.search(words) and family != "kubernetes" \
        and not NOT_DOWN.search(words)
    if not scores:
        return Classification(Category.UNKNOWN, 0.1, "no known words or metrics", family,
                              family in STATEFUL, down)
    best = max(scores, key=lambda c: (scores[c], -PRECEDENCE.index(c)))
    total, top = sum(scores.values()), scores[best]
    confidence = round(min(0.85, 0.35 + 0.1 * top) * (0.6 + 0.4 * top / total), 2)
    reason = f"{best}: " + ", ".join(dict.fromkeys(why[best][:3]))
    return Classification(best, confidence, reason, family, family in STATEFUL,
                          down and best == Category.AVAILABILITY, tuple(why[best]))


def classify(alertname: str, exprs: list[str] | None = None,
             annotations: dict[str, str] | None = None) -> Classification:
    """The category of one alert; pure and cached on its inputs."""
    return _classify(alertname[:200], " ".join(exprs or [])[:_MAX_TEXT],
                     _text_words(annotations or {}))
