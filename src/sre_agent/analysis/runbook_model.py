"""Runbook files: the pydantic models, safe templates and loading. The format is in rules.py.

Pure apart from reading the runbook files themselves; nothing here evaluates alert data.
"""

from __future__ import annotations

import re
import string
from collections import defaultdict
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sre_agent.domain.diagnosis import CONTAINER_ACTIONS, ActionKind, Category, Severity

CONFIDENCE_WORDS = {"high": 0.9, "medium": 0.6, "low": 0.3}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class RunbookError(Exception):
    """A runbook file that cannot be used; the message names the file and the field."""


class ContainerState(StrEnum):
    RUNNING = "running"
    EXITED = "exited"  # status exited or dead
    NOT_RUNNING = "not_running"
    RESTARTING = "restarting"
    PAUSED = "paused"
    UNHEALTHY = "unhealthy"
    HEALTHY = "healthy"
    OOM_KILLED = "oom_killed"

    def holds(self, data: dict[str, Any]) -> bool:
        """Whether a Docker evidence ``data`` dict shows this state."""
        status, health = data.get("status"), data.get("health")
        return {"exited": status in ("exited", "dead"),
                "not_running": status not in (None, "running"),
                "healthy": health == "healthy", "unhealthy": health == "unhealthy",
                "oom_killed": data.get("oom_killed") is True}.get(self.value, status == self.value)


Op = Literal[">", ">=", "<", "<=", "==", "!="]
_OPS = {">": float.__gt__, ">=": float.__ge__, "<": float.__lt__, "<=": float.__le__,
        "==": float.__eq__, "!=": float.__ne__}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Matcher(_Strict):
    """How one string is matched. A bare string means ``equals``, a bare list means ``in``."""

    equals: str | None = None
    in_: list[str] | None = Field(default=None, alias="in")
    regex: re.Pattern[str] | None = None
    present: bool | None = None
    absent: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return {"equals": value} if isinstance(value, str) else (
            {"in": value} if isinstance(value, list) else value)

    @model_validator(mode="after")
    def _exactly_one(self) -> Matcher:
        if sum(v is not None for v in (self.equals, self.in_, self.regex, self.present,
                                        self.absent)) != 1:
            raise ValueError("use exactly one of equals, in, regex, present, absent")
        return self

    def test(self, value: str | None, *, anchored: bool = True) -> bool:
        """Anchored: like a Prometheus matcher. Unanchored (for PromQL): regex searches and
        equals ignores whitespace."""
        if self.present is not None:
            return bool(value) == self.present
        if self.absent is not None:
            return (not value) == self.absent
        if value is None:
            return False
        if self.equals is not None:
            return value == self.equals if anchored else (
                "".join(value.split()) == "".join(self.equals.split()))
        if self.in_ is not None:
            return value in self.in_
        assert self.regex is not None
        return bool(self.regex.fullmatch(value) if anchored else self.regex.search(value))


class Threshold(_Strict):
    op: Op
    value: float

    def test(self, value: Any) -> bool:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        return ok and bool(_OPS[self.op](float(value), self.value))


class MetricCondition(Threshold):
    name: str = Field(min_length=1, description="Prometheus evidence name, e.g. query:error_rate")


class ClassifiedCondition(_Strict):
    """What the classifier concluded about the alert (see analysis/classifier.py)."""

    category: list[Category] | None = None
    family: list[str] | None = None
    stateful: bool | None = None
    down: bool | None = None

    @field_validator("category", "family", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: list[str] | None) -> list[str] | None:
        from sre_agent.analysis.classifier_signals import FAMILIES

        unknown = sorted(set(value or []) - set(FAMILIES))
        if unknown:
            raise ValueError(f"unknown family {', '.join(unknown)} (known: "
                             f"{', '.join(sorted(FAMILIES))})")
        return value


class Condition(_Strict):
    """Every key given must hold (AND); an empty condition always holds."""

    alertname: Matcher | None = None
    label: dict[str, Matcher] | None = None
    severity: list[str] | None = None
    expr: Matcher | None = None
    container: list[ContainerState] | None = None
    metric: MetricCondition | None = None
    probe: Literal["healthy", "unhealthy"] | None = None
    response_ms: Threshold | None = None
    classified: ClassifiedCondition | None = None
    any: list[Condition] | None = Field(default=None, min_length=1)
    all: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @field_validator("severity", "container", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class ActionSpec(_Strict):
    kind: ActionKind
    target: Literal["resolved"] | None = None
    reason: str = ""
    when: Condition | None = Field(
        default=None, description="container conditions are checked per target")

    @field_validator("reason")
    @classmethod
    def _reason(cls, value: str) -> str:
        return check_template(value)

    @model_validator(mode="after")
    def _container_needs_target(self) -> ActionSpec:
        if self.kind in CONTAINER_ACTIONS and self.target != "resolved":
            raise ValueError(f"{self.kind} needs target: resolved")
        return self


class Runbook(_Strict):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=100)
    description: str = ""
    priority: int = 0
    match: Condition = Field(default_factory=Condition)
    category: Category | Literal["from_classifier"]
    summary: str = Field(min_length=1)
    probable_cause: str = ""
    severity: Severity | Literal["from_label"] = "from_label"
    confidence: float = Field(ge=0.0, le=1.0)
    issue_detected: bool = True
    actions: list[ActionSpec] = Field(default_factory=list)
    fallback: list[ActionKind] = Field(
        default_factory=lambda: [ActionKind.ESCALATE],
        description="proposed instead of container actions when no target is resolved")
    queries: dict[str, str] = Field(default_factory=dict)

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence_word(cls, value: Any) -> Any:
        return CONFIDENCE_WORDS.get(value, value) if isinstance(value, str) else value

    @field_validator("fallback")
    @classmethod
    def _fallback_not_container(cls, value: list[ActionKind]) -> list[ActionKind]:
        if CONTAINER_ACTIONS.intersection(value):
            raise ValueError("fallback cannot hold container actions")
        return value

    @field_validator("queries")
    @classmethod
    def _query_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name, query in value.items():
            if not _IDENT.fullmatch(name):
                raise ValueError(f"query name {name!r} must be an identifier")
            check_template(query)
        return value

    @field_validator("summary", "probable_cause")
    @classmethod
    def _templates(cls, value: str) -> str:
        return check_template(value)



def template_fields(template: str) -> list[str]:
    """The ``{name}`` placeholders of a template; raises ValueError on anything richer."""
    fields: list[str] = []
    for _, field, spec, conversion in string.Formatter().parse(template):
        if field is None:
            continue
        if not _IDENT.fullmatch(field) or spec or conversion:
            raise ValueError(f"template placeholder {{{field}}} must be a plain label name "
                             "(write literal braces as {{ and }})")
        fields.append(field)
    return fields


def check_template(template: str) -> str:
    template_fields(template)
    return template


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``{label}`` placeholders. Values are inserted as text, never parsed again."""
    return template.format_map(defaultdict(str, values))  # a missing label renders as ""


def render_query(template: str, labels: dict[str, str]) -> str | None:
    """A PromQL template filled from labels, escaped for PromQL strings; None if one is missing."""
    fields = template_fields(template)
    if any(not labels.get(f) for f in fields):
        return None
    return render(template, {f: labels[f].replace("\\", "\\\\").replace('"', '\\"')
                             .replace("\n", "\\n") for f in fields})



def yaml_problem(exc: yaml.YAMLError) -> str:
    """A YAML error on one line: where, and what."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"invalid YAML{where}: {getattr(exc, 'problem', None) or exc}"


def _where(err: Any) -> str:
    return ".".join(str(p) for p in err["loc"]
                    if not str(p).startswith("function-") and "[" not in str(p))


def _describe(err: Any) -> str:
    where, msg = _where(err), str(err["msg"]).removeprefix("Value error, ")
    if "regular expression" in msg and isinstance(pattern := err.get("input"), str):
        try:
            re.compile(pattern)
        except re.error as exc:
            msg = f"invalid regular expression {pattern!r}: {exc}"
    return f"{where}: {msg}" if where else msg


def _describe_all(exc: ValidationError) -> list[str]:
    """One line per field; the branches of a union (e.g. category) joined with 'or'."""
    by_where: dict[str, list[str]] = {}
    for err in exc.errors():
        text = _describe(err)
        by_where.setdefault(_where(err), []).append(text.split(": ", 1)[-1] if _where(err)
                                                    else text)
    return [f"{w}: {' or '.join(dict.fromkeys(m))}" if w else " or ".join(m)
            for w, m in by_where.items()]


def check_runbook_text(text: str, origin: str) -> tuple[list[Runbook], list[str]]:
    """One file: a single runbook mapping, or ``runbooks: [...]``. Returns the valid runbooks
    and every problem found, each naming the file, the runbook and the field."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return [], [f"{origin}: {yaml_problem(exc)}"]
    if isinstance(doc, dict) and "runbooks" in doc and set(doc) == {"runbooks"}:
        items = doc["runbooks"]
    else:
        items = [doc]
    if not isinstance(items, list) or not items:
        return [], [f"{origin}: runbooks must be a non-empty list"]
    books: list[Runbook] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            problems.append(f"{origin}: runbook #{i + 1} is not a mapping")
            continue
        label = f"runbook {item.get('name')!r}" if item.get("name") else f"runbook #{i + 1}"
        try:
            books.append(Runbook.model_validate(item))
        except ValidationError as exc:
            problems += [f"{origin}: {label}: {line}" for line in _describe_all(exc)]
    return books, problems


def parse_runbooks(text: str, origin: str) -> list[Runbook]:
    """One file's runbooks; raises RunbookError with the first problem."""
    books, problems = check_runbook_text(text, origin)
    if problems:
        raise RunbookError(problems[0])
    return books


def _read(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RunbookError(f"{file}: cannot read: {exc}") from None


def load_runbooks(runbooks_dir: str | Path | None = None,
                  origins: dict[str, str] | None = None) -> list[Runbook]:
    """Shipped runbooks, then ``runbooks_dir``'s, which replace shipped ones of the same name.
    Sorted by priority (highest first), then name. ``origins`` (if given) receives the file
    each runbook came from."""
    shipped = resources.files("sre_agent.analysis").joinpath("runbooks")
    layers = [[(f"runbooks/{e.name}", e.read_text(encoding="utf-8"))
               for e in sorted(shipped.iterdir(), key=lambda e: e.name)
               if e.name.endswith((".yml", ".yaml"))]]
    if runbooks_dir is not None:
        path = Path(runbooks_dir)
        if not path.is_dir():
            raise RunbookError(f"{path}: runbooks directory not found")
        layers.append([(str(f), _read(f))
                       for f in sorted([*path.glob("*.yml"), *path.glob("*.yaml")])])
    books: dict[str, Runbook] = {}
    for layer in layers:
        seen: dict[str, str] = {}
        for origin, text in layer:
            for book in parse_runbooks(text, origin):
                if book.name in seen:
                    raise RunbookError(f"{origin}: runbook {book.name!r} is also defined in "
                                       f"{seen[book.name]}")
                seen[book.name] = origin
                books[book.name] = book
                if origins is not None:
                    origins[book.name] = origin
    return sorted(books.values(), key=lambda b: (-b.priority, b.name))


Condition.model_rebuild()
