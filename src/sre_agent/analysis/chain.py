"""The analysis chain: the LLM when configured and healthy, the rules otherwise.

``FallbackAnalyzer`` tries the primary (LLM) analyzer under a hard time bound, a circuit
breaker, a calls-per-minute limit and a per-incident token budget; whenever the primary is
skipped or fails, the fallback (rules) analyzer answers and ``Diagnosis.fallback_reason`` says
why, in a few words: ``llm timeout``, ``llm http 500``, ``llm connection error``,
``llm invalid output: ...``, ``llm refusal``, ``llm breaker open``, ``llm rate limit``,
``llm token budget``, ``llm error: ...``.

With no primary at all (no LLM configured, the normal embedded setup) the rules answer with
``fallback_reason = None``: nothing failed, there was nothing to fall back from.

Breaker: after ``breaker_failures`` consecutive failures the primary is skipped for
``breaker_cooldown_s``; then one trial call is let through (half-open). Success closes the
breaker; failure opens it for another cooldown. Skips for rate limit or token budget are not
failures.

With ``combine=True`` (the default from settings, ``SRE_AGENT_LLM__COMBINE_WITH_RULES``) a
successful LLM answer is not used alone: the rules analyse the same incident too and
``analysis/combine.py`` merges the two, so that switching the LLM on can only help. When no
LLM answer could change the actions (``combine.llm_can_change_actions``, and
``SRE_AGENT_LLM__EXPLAIN_AFTER_ACTING``, on by default) the rules' diagnosis is returned at once
with ``explanation_pending``; the pipeline asks ``explain`` for the LLM's text afterwards.

``status()`` reports the breaker, the call budget and running totals (calls, failures, tokens,
latency p50/p95 of the last 100 answers); ``llm_state(status)`` turns it into the one state
shown by ``/status`` JSON and the dashboard alike.

Every returned Diagnosis, from either engine, has been through ``validate_proposals``.
This module never imports LangChain; ``from_settings`` imports the LLM module lazily.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from sre_agent.analysis.combine import combine as combine_diagnoses
from sre_agent.analysis.combine import llm_can_change_actions
from sre_agent.analysis.tools import InvestigationTools
from sre_agent.analysis.validation import (
    LLMError,
    LLMHTTPError,
    LLMInvalidOutput,
    LLMRefusal,
    LLMTimeout,
    validate_proposals,
)
from sre_agent.config import LLMSettings
from sre_agent.domain.diagnosis import Diagnosis, Engine
from sre_agent.domain.evidence import AlertContext, Evidence, ResolvedTarget
from sre_agent.ports import Analyzer

__all__ = [
    "BreakerState",
    "FallbackAnalyzer",
    "LLMError",
    "LLMHTTPError",
    "LLMInvalidOutput",
    "LLMRefusal",
    "LLMTimeout",
    "describe_failure",
    "llm_state",
]

RATE_WINDOW_S = 60.0
LATENCY_WINDOW = 100


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def describe_failure(exc: BaseException) -> str:
    """A short ``fallback_reason`` for what the primary raised."""
    if isinstance(exc, LLMError):
        return exc.reason
    if isinstance(exc, TimeoutError):
        return "llm timeout"
    text = str(exc).strip()
    return f"llm error: {type(exc).__name__}" + (f": {text[:150]}" if text else "")


def llm_state(status: dict[str, Any]) -> tuple[str, str]:
    """The LLM's state and a one-line detail, from ``FallbackAnalyzer.status()``: the single
    function behind both ``/status`` JSON (``components.llm``) and the dashboard badge.

    ``disabled`` (rules only), ``breaker_open`` (skipped; rules answer), ``degraded`` (recent
    failures, breaker still closed), ``healthy``.
    """
    if not status.get("configured"):
        return "disabled", "runbook rules only"
    calls = (f"{status.get('calls_last_minute', 0)}/{status.get('calls_per_minute_limit', '?')}"
             " calls/min")
    if status.get("breaker_open"):
        remaining = float(status.get("breaker_cooldown_remaining_s") or 0.0)
        return "breaker_open", f"falling back to rules; retry in {remaining:.0f}s"
    failures = int(status.get("consecutive_failures") or 0)
    if failures:
        return "degraded", f"{failures} recent failure(s); {calls}"
    return "healthy", calls


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return round(ordered[index], 1)


class FallbackAnalyzer:
    """``Analyzer``: primary under breaker and budgets, fallback when it is skipped or fails."""

    name = "chain"

    def __init__(self, primary: Analyzer | None, fallback: Analyzer, *,
                 breaker_failures: int = 3, breaker_cooldown_s: float = 300.0,
                 calls_per_minute: int = 30, max_tokens_per_incident: int = 20000,
                 hard_timeout_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 max_tracked_incidents: int = 10_000, combine: bool = False,
                 model: str | None = None, explain_after_acting: bool = True) -> None:
        if breaker_failures < 1 or calls_per_minute < 1 or max_tokens_per_incident < 1:
            raise ValueError("breaker_failures, calls_per_minute and max_tokens_per_incident "
                             "must be positive")
        self._primary = primary
        self._fallback = fallback
        self._breaker_failures = breaker_failures
        self._cooldown_s = breaker_cooldown_s
        self._calls_per_minute = calls_per_minute
        self._max_tokens = max_tokens_per_incident
        self._hard_timeout_s = hard_timeout_s
        self._clock = clock
        self._max_tracked = max_tracked_incidents
        self._failures = 0
        self._opened_at: float | None = None
        self._trial_in_flight = False
        self._calls: deque[float] = deque()
        self._tokens: OrderedDict[str, int] = OrderedDict()
        self._last_failure: str | None = None
        self._combine = combine and primary is not None
        self._explain_after = explain_after_acting
        self._model = model
        self._calls_total = 0
        self._failures_total = 0
        self._tokens_total = 0
        self._latencies_ms: deque[float] = deque(maxlen=LATENCY_WINDOW)

    @property
    def combines(self) -> bool:
        return self._combine

    @classmethod
    def from_settings(cls, settings: LLMSettings, fallback: Analyzer, *,
                      tools: InvestigationTools | None = None,
                      hard_timeout_s: float | None = None,
                      clock: Callable[[], float] = time.monotonic,
                      combine: bool | None = None) -> FallbackAnalyzer:
        """The chain for ``settings``: the LLM module is imported only when the LLM is on
        (an API key or a base URL). ``combine`` defaults to ``settings.combine_with_rules``.

        ``hard_timeout_s`` bounds one whole LLM analysis (tool rounds included); default
        ``2 * settings.timeout_s``. Keep it below the pipeline's stage timeout.
        """
        primary: Analyzer | None = None
        if settings.enabled:
            from sre_agent.analysis.llm import LangChainAnalyzer

            primary = LangChainAnalyzer(settings, tools)
        return cls(primary, fallback,
                   breaker_failures=settings.breaker_failures,
                   breaker_cooldown_s=settings.breaker_cooldown_s,
                   calls_per_minute=settings.calls_per_minute,
                   max_tokens_per_incident=settings.max_tokens_per_incident,
                   hard_timeout_s=hard_timeout_s if hard_timeout_s is not None
                   else 2 * settings.timeout_s,
                   clock=clock,
                   combine=settings.combine_with_rules if combine is None else combine,
                   model=settings.model if primary is not None else None,
                   explain_after_acting=settings.explain_after_acting)

    # --- state ---------------------------------------------------------------------------

    def _prune(self, now: float) -> None:
        while self._calls and now - self._calls[0] >= RATE_WINDOW_S:
            self._calls.popleft()

    def _breaker_state(self, now: float) -> BreakerState:
        if self._failures < self._breaker_failures or self._opened_at is None:
            return BreakerState.CLOSED
        if now - self._opened_at < self._cooldown_s:
            return BreakerState.OPEN
        return BreakerState.HALF_OPEN

    def _skip_reason(self, incident_id: str, now: float) -> str | None:
        state = self._breaker_state(now)
        if state is BreakerState.OPEN or (state is BreakerState.HALF_OPEN
                                          and self._trial_in_flight):
            return "llm breaker open"
        if self._tokens.get(incident_id, 0) >= self._max_tokens:
            return "llm token budget"
        self._prune(now)
        if len(self._calls) >= self._calls_per_minute:
            return "llm rate limit"
        return None

    def _add_tokens(self, incident_id: str, tokens: int) -> None:
        if tokens <= 0:
            return
        self._tokens[incident_id] = self._tokens.get(incident_id, 0) + tokens
        self._tokens.move_to_end(incident_id)
        while len(self._tokens) > self._max_tracked:
            self._tokens.popitem(last=False)

    def _record_success(self) -> None:
        self._calls_total += 1
        self._failures = 0
        self._opened_at = None

    def _record_failure(self, reason: str, now: float) -> None:
        self._calls_total += 1
        self._failures_total += 1
        self._failures += 1
        self._last_failure = reason
        if self._failures >= self._breaker_failures:
            self._opened_at = now  # opens, or re-opens after a failed half-open trial

    def status(self) -> dict[str, Any]:
        """For ``/status``: is an LLM configured, and is it being used."""
        now = self._clock()
        self._prune(now)
        state = self._breaker_state(now) if self._primary is not None else BreakerState.CLOSED
        remaining = 0.0
        if state is BreakerState.OPEN and self._opened_at is not None:
            remaining = max(0.0, self._cooldown_s - (now - self._opened_at))
        latencies = list(self._latencies_ms)
        status: dict[str, Any] = {
            "configured": self._primary is not None,
            "primary": self._primary.name if self._primary is not None else None,
            "fallback": self._fallback.name,
            "model": self._model,
            "combined_with_rules": self._combine,
            "breaker_state": state.value,
            "breaker_open": state is BreakerState.OPEN,
            "breaker_cooldown_remaining_s": round(remaining, 3),
            "consecutive_failures": self._failures,
            "calls_last_minute": len(self._calls),
            "calls_per_minute_limit": self._calls_per_minute,
            "last_failure": self._last_failure,
            "calls_total": self._calls_total,
            "failures_total": self._failures_total,
            "tokens_total": self._tokens_total,
            "latency_ms_p50": _percentile(latencies, 50),
            "latency_ms_p95": _percentile(latencies, 95),
        }
        status["state"], status["detail"] = llm_state(status)
        return status

    # --- analysis ------------------------------------------------------------------------

    async def _call_primary(self, primary: Analyzer, ctx: AlertContext,
                            targets: list[ResolvedTarget], evidence: list[Evidence],
                            explain_only: bool = False) -> Diagnosis:
        # An explanation asks for the text alone when the primary can (LangChainAnalyzer).
        explain = getattr(primary, "explain", None) if explain_only else None
        call = (explain(ctx, targets, evidence) if explain is not None
                else primary.analyse(ctx, targets, evidence))
        if self._hard_timeout_s is None:
            result = await call
        else:
            result = await asyncio.wait_for(call, timeout=self._hard_timeout_s)
        if not isinstance(result, Diagnosis):
            raise LLMInvalidOutput(f"primary returned {type(result).__name__}, not a Diagnosis")
        return result

    async def _try_primary(self, ctx: AlertContext, targets: list[ResolvedTarget],
                           evidence: list[Evidence], explain_only: bool = False,
                           ) -> tuple[Diagnosis | None, str | None]:
        """The primary's validated answer, or None and why it was skipped or failed."""
        primary = self._primary
        if primary is None:
            return None, None
        now = self._clock()
        reason = self._skip_reason(ctx.incident_id, now)
        if reason is not None:
            return None, reason
        trial = self._breaker_state(now) is BreakerState.HALF_OPEN
        self._calls.append(now)
        if trial:
            self._trial_in_flight = True
        started = time.perf_counter()
        try:
            diagnosis = await self._call_primary(primary, ctx, targets, evidence, explain_only)
        except Exception as exc:
            reason = describe_failure(exc)
            spent = int(getattr(exc, "tokens", 0) or 0)
            self._add_tokens(ctx.incident_id, spent)
            self._tokens_total += max(0, spent)
            self._record_failure(reason, self._clock())
            return None, reason
        finally:
            if trial:
                self._trial_in_flight = False
        self._add_tokens(ctx.incident_id, diagnosis.tokens)
        self._tokens_total += max(0, diagnosis.tokens)
        self._latencies_ms.append((time.perf_counter() - started) * 1000)
        self._record_success()
        return validate_proposals(diagnosis, targets), None

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        rules: Diagnosis | None = None
        if self._combine:
            rules = validate_proposals(await self._fallback.analyse(ctx, targets, evidence),
                                       targets)
            if self._explain_after and self.decided_without_llm(ctx, rules, targets, evidence):
                return rules.model_copy(update={
                    "explanation_pending": True, "action_engine": Engine.RULES,
                    "action_reason": f"runbook {rules.runbook} matched with confidence "
                                     f"{rules.confidence:.2f} and the evidence backs no other "
                                     "container action: no LLM answer can change the actions, "
                                     "so they are proposed at once; the LLM explains after"})
        diagnosis, reason = await self._try_primary(ctx, targets, evidence)
        if diagnosis is not None:
            if rules is not None:
                diagnosis = combine_diagnoses(rules, diagnosis, evidence)
            return validate_proposals(diagnosis, targets)
        fallback = rules if rules is not None else await self._fallback.analyse(
            ctx, targets, evidence)
        update: dict[str, Any] = {"fallback_reason": reason}
        if reason is not None:
            update["action_reason"] = f"the LLM did not answer ({reason}): the rules decide"
        return validate_proposals(fallback.model_copy(update=update), targets)

    def decided_without_llm(self, ctx: AlertContext, rules: Diagnosis,
                            targets: list[ResolvedTarget], evidence: list[Evidence]) -> bool:
        """The rules' actions stand whatever the LLM says (``combine.llm_can_change_actions``)
        and the LLM may be called now: act at once, explain after."""
        return (not llm_can_change_actions(rules, [t.name for t in targets], evidence)
                and self._skip_reason(ctx.incident_id, self._clock()) is None)

    async def explain(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence], decided: Diagnosis) -> Diagnosis:
        """The LLM's text for ``decided``, a diagnosis proposed without waiting for it
        (``explanation_pending``): ``decided`` combined with the LLM's answer, whose actions are
        ``decided``'s by construction; with ``fallback_reason`` when the LLM did not answer.
        Never raises."""
        done = {"explanation_pending": False}
        try:
            llm, reason = await self._try_primary(ctx, targets, evidence, explain_only=True)
        except Exception as exc:  # an explanation must never fail the pipeline
            llm, reason = None, describe_failure(exc)
        if llm is None:
            return decided.model_copy(update={**done, "fallback_reason": reason})
        merged = combine_diagnoses(decided, llm, evidence)
        return merged.model_copy(update={
            **done, "proposed_actions": decided.proposed_actions,
            "action_engine": decided.action_engine, "action_reason": decided.action_reason})
