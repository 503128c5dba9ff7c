"""Which incidents go to which chat and paging destinations: one setting, ``SRE_AGENT_ROUTES``.

Syntax: rules separated by ``;``, each ``MATCHERS -> DESTINATIONS``; the first rule whose
matchers all hold decides (later rules are not read). ``MATCHERS`` is ``*`` (always) or matchers
separated by ``,``: ``name=value``, ``name!=value``, ``name=~regex``, ``name!~regex`` (the regex
must match the whole value), over the incident's common labels plus ``severity`` (the
incident's). ``DESTINATIONS`` is a ``,``-separated list of ``slack``, ``teams``, ``pagerduty``,
or ``none``. An incident no rule matches goes nowhere. Example::

    severity=critical -> slack,pagerduty; team=~db|cache -> teams; * -> slack

Unset: every configured destination gets every incident.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum


class Destination(StrEnum):
    SLACK = "slack"
    TEAMS = "teams"
    PAGERDUTY = "pagerduty"


_MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(=~|!~|!=|=)\s*(.*?)\s*$")


class RoutesError(ValueError):
    """A routes setting that does not parse; the message names the rule and the problem."""


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str

    def holds(self, labels: Mapping[str, str]) -> bool:
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found


@dataclass(frozen=True)
class Route:
    matchers: tuple[Matcher, ...]  # empty: always
    destinations: frozenset[Destination]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.holds(labels) for m in self.matchers)


@dataclass(frozen=True)
class Routes:
    rules: tuple[Route, ...]

    def destinations_for(self, labels: Mapping[str, str]) -> frozenset[Destination]:
        for rule in self.rules:
            if rule.matches(labels):
                return rule.destinations
        return frozenset()

    @property
    def named(self) -> frozenset[Destination]:
        """Every destination some rule sends to."""
        return frozenset(d for rule in self.rules for d in rule.destinations)

    @staticmethod
    def everything(destinations: Iterable[Destination]) -> Routes:
        return Routes((Route((), frozenset(destinations)),))


def _matcher(text: str, rule: str) -> Matcher:
    found = _MATCHER.match(text)
    if found is None:
        raise RoutesError(f"route {rule!r}: {text.strip()!r} is not name=value, name!=value, "
                          "name=~regex or name!~regex")
    name, op, value = found.groups()
    if op in ("=~", "!~"):
        try:
            re.compile(value)
        except re.error as exc:
            raise RoutesError(f"route {rule!r}: bad regex {value!r}: {exc}") from None
    return Matcher(name, op, value)


def parse_routes(text: str) -> Routes:
    """Parse ``SRE_AGENT_ROUTES``; raises ``RoutesError`` naming the rule that is wrong."""
    rules: list[Route] = []
    for raw in text.split(";"):
        rule = raw.strip()
        if not rule:
            continue
        left, arrow, right = rule.partition("->")
        if not arrow:
            raise RoutesError(f"route {rule!r}: expected 'MATCHERS -> DESTINATIONS'")
        names = [n.strip().lower() for n in right.split(",") if n.strip()]
        if not names:
            raise RoutesError(f"route {rule!r}: no destination after '->'")
        dests: set[Destination] = set()
        for name in names:
            if name == "none":
                continue
            try:
                dests.add(Destination(name))
            except ValueError:
                raise RoutesError(f"route {rule!r}: unknown destination {name!r} (known: "
                                  "slack, teams, pagerduty, none)") from None
        spec = left.strip()
        if not spec:
            raise RoutesError(f"route {rule!r}: no matcher before '->' (use * for all)")
        matchers = () if spec == "*" else tuple(_matcher(m, rule) for m in spec.split(","))
        rules.append(Route(matchers, frozenset(dests)))
    return Routes(tuple(rules))
