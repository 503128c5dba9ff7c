"""PromQL evidence from the Prometheus HTTP API (read-only, time-bounded, never raises).

``prometheus_api_client`` is synchronous: each query runs in ``asyncio.to_thread`` under
``asyncio.wait_for``, with a request timeout and a tiny retry so that an unreachable Prometheus
fails in well under a second instead of the library's default ~6 s.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_api_client import PrometheusConnect
from urllib3.util.retry import Retry

from sre_agent.domain.alertmanager import expression_from_generator_url
from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget
from sre_agent.evidence.recent import RecentReads
from sre_agent.shared.redact import redact

SOURCE = "prometheus"
MAX_SERIES = 20
MAX_RANGE_POINTS = 40
MAX_ERROR_CHARS = 500


def promql_label_value(value: str) -> str:
    """Quote a label value for a PromQL matcher (alert labels are untrusted)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def up_query(job: str, instance: str | None) -> str:
    matchers = [f"job={promql_label_value(job)}"]
    if instance:
        matchers.append(f"instance={promql_label_value(instance)}")
    return "up{" + ",".join(matchers) + "}"


def _number(raw: Any) -> float | None:
    """A sample value as a JSON-safe float; NaN and ±Inf become None."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def summarise_instant(query: str, result: Any) -> tuple[EvidenceStatus, dict[str, Any]]:
    """The data contract for an instant query result (vector, scalar or string)."""
    series: list[dict[str, Any]] = []
    scalar = (isinstance(result, list) and len(result) == 2
              and isinstance(result[0], int | float) and isinstance(result[1], str))
    if not isinstance(result, list) or (result and not scalar
                                        and not isinstance(result[0], dict)):
        # Neither a vector (list of samples) nor a scalar ([ts, value]): not Prometheus.
        return EvidenceStatus.ERROR, {"query": query, "value": None, "series": [],
                                      "error": f"unexpected result shape: {str(result)[:80]}"}
    if scalar:
        series = [{"metric": {}, "value": _number(result[1]), "raw": str(result[1])}]  # scalar
    elif isinstance(result, list):
        for item in result:
            if not isinstance(item, dict):
                return EvidenceStatus.ERROR, {"query": query, "value": None, "series": [],
                                              "error": "unexpected sample in the result"}
            sample = item.get("value") or [None, None]
            entry: dict[str, Any] = {"metric": dict(item.get("metric") or {}),
                                     "value": _number(sample[1])}
            if entry["value"] is None:
                entry["raw"] = str(sample[1])
            series.append(entry)
    if not series:
        return EvidenceStatus.NO_DATA, {"query": query, "value": None, "series": []}
    series.sort(key=lambda s: (s["value"] is None, -(s["value"] or 0.0)))
    values = [s["value"] for s in series if s["value"] is not None]
    data: dict[str, Any] = {"query": query, "value": max(values) if values else None,
                            "series": series[:MAX_SERIES]}
    if len(series) > MAX_SERIES:
        data["series_total"] = len(series)
    return EvidenceStatus.OK, data


def summarise_range(result: Any, max_points: int = MAX_RANGE_POINTS) -> dict[str, Any]:
    """The series with the highest latest value, as a short ``[[ts, value], ...]`` list."""
    best: dict[str, Any] | None = None
    best_last: float | None = None
    for item in result if isinstance(result, list) else []:
        if not isinstance(item, dict) or not item.get("values"):
            continue
        last = _number(item["values"][-1][1])
        if best is None or (last is not None and (best_last is None or last > best_last)):
            best, best_last = item, last
    if best is None:
        return {"range": [], "range_metric": {}}
    points = [[float(ts), _number(v)] for ts, v in best["values"]][-max_points:]
    return {"range": points, "range_metric": dict(best.get("metric") or {})}


def _short_error(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact(text)[:MAX_ERROR_CHARS]


class PrometheusEvidence:
    """Alert expression, target ``up`` and runbook queries. Implements ``EvidenceSource``."""

    name = "prometheus"

    def __init__(self, url: str, timeout_s: float, lookback_minutes: int = 10,
                 range_step_s: float = 15.0, recent_s: float = 0.0) -> None:
        self.url = url.rstrip("/")
        # What ``collect`` asked, shared with incidents asking within recent_s
        # (evidence/recent.py); an error is never reused.
        self._recent: RecentReads[Evidence] = RecentReads(
            recent_s, keep=lambda ev: ev.status is not EvidenceStatus.ERROR)
        self.timeout_s = timeout_s
        self.lookback_minutes = lookback_minutes
        self.range_step_s = range_step_s
        # One quick retry for a reset connection; no retries on read timeouts or HTTP statuses.
        retry = Retry(total=1, connect=1, read=0, status=0, other=0, redirect=0,
                      backoff_factor=0.05, raise_on_status=False)
        self._client = PrometheusConnect(url=self.url, retry=retry, timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    # --- sync queries (run in threads) --------------------------------------------------

    def _params(self) -> dict[str, str]:
        return {"timeout": f"{self.timeout_s:g}s"}  # Prometheus' own evaluation timeout

    def _instant_sync(self, promql: str) -> Any:
        return self._client.custom_query(promql, params=self._params())

    def _range_sync(self, promql: str, minutes: float, step_s: float) -> Any:
        # The client rounds to whole seconds: round the end up, so the last point is never
        # before the newest sample (a point in the near future still sees it).
        end = datetime.fromtimestamp(math.ceil(time.time()), UTC)
        start = end - timedelta(minutes=minutes)
        return self._client.custom_query_range(promql, start_time=start, end_time=end,
                                               step=f"{step_s:g}s", params=self._params())

    # --- async API ----------------------------------------------------------------------

    async def _bounded(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.wait_for(asyncio.to_thread(fn), self.timeout_s)

    async def _evidence(self, name: str, promql: str, *, with_range: bool = False) -> Evidence:
        start = time.perf_counter()
        data: dict[str, Any] = {"query": promql, "value": None, "series": []}
        error: str | None = None
        try:
            if with_range:
                instant, ranged = await asyncio.gather(
                    self._bounded(lambda: self._instant_sync(promql)),
                    self._bounded(lambda: self._range_sync(
                        promql, self.lookback_minutes, self.range_step_s)),
                    return_exceptions=True)
            else:
                instant, ranged = await self._bounded(lambda: self._instant_sync(promql)), None
            if isinstance(instant, BaseException):
                raise instant
            status, data = summarise_instant(promql, instant)
            if status is EvidenceStatus.ERROR:
                error = str(data.pop("error", "unexpected answer from Prometheus"))
            elif isinstance(ranged, BaseException):
                data["range_error"] = self._describe(ranged)
            elif with_range:
                data.update(summarise_range(ranged))
                if status is EvidenceStatus.NO_DATA and data["range"]:
                    status = EvidenceStatus.OK  # nothing now, but there was recently
        except Exception as exc:  # never raise: a failure is evidence with status error
            status, error = EvidenceStatus.ERROR, self._describe(exc)
        return Evidence(source=SOURCE, name=name, status=status, data=data, error=error,
                        duration_ms=round((time.perf_counter() - start) * 1000, 1))

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, TimeoutError):
            return f"timed out after {self.timeout_s:g}s"
        return _short_error(exc)

    async def query(self, promql: str) -> Evidence:
        """One instant query."""
        return await self._evidence("query", promql)

    async def query_range(self, promql: str, minutes: float | None = None,
                          step_s: float | None = None) -> Evidence:
        """One range query over the last ``minutes`` (the highest series, at most 40 points)."""
        start = time.perf_counter()
        minutes = self.lookback_minutes if minutes is None else max(0.1, min(minutes, 24 * 60))
        step = step_s or max(self.range_step_s, minutes * 60 / MAX_RANGE_POINTS)
        data: dict[str, Any] = {"query": promql, "range": []}
        error: str | None = None
        try:
            result = await self._bounded(lambda: self._range_sync(promql, minutes, step))
            data.update(summarise_range(result))
            status = EvidenceStatus.OK if data["range"] else EvidenceStatus.NO_DATA
        except Exception as exc:
            status, error = EvidenceStatus.ERROR, self._describe(exc)
        return Evidence(source=SOURCE, name="query_range", status=status, data=data,
                        error=error, duration_ms=round((time.perf_counter() - start) * 1000, 1))

    def plan(self, ctx: AlertContext) -> list[tuple[str, str, bool]]:
        """(evidence name, PromQL, with range) for an incident, deduplicated."""
        items: dict[tuple[str, str], bool] = {}
        for alert in ctx.alerts:
            expr = expression_from_generator_url(str(alert.get("generator_url") or ""))
            if expr:
                items.setdefault(("alert_expr", expr), True)
        for alert in ctx.alerts or [{"labels": ctx.labels}]:
            labels = alert.get("labels") or {}
            if labels.get("job"):
                items.setdefault(("up", up_query(str(labels["job"]),
                                                 str(labels.get("instance") or ""))), False)
        for qname, promql in ctx.extra_queries.items():
            if promql.strip():
                items.setdefault((f"query:{qname}", promql), False)
        return [(name, promql, rng) for (name, promql), rng in items.items()]

    async def collect(self, ctx: AlertContext, targets: list[ResolvedTarget]) -> list[Evidence]:
        """All queries of the plan, concurrently; each bounded by ``timeout_s``."""
        async def one(name: str, promql: str, rng: bool) -> Evidence:
            start = time.perf_counter()
            ev, age = await self._recent.get(
                (promql, rng), lambda: self._evidence(name, promql, with_range=rng))
            if age is None:
                return ev
            return ev.model_copy(update={
                "name": name, "data": {**ev.data, "cached_age_s": age},
                "duration_ms": round((time.perf_counter() - start) * 1000, 1)})

        return list(await asyncio.gather(*(one(*item) for item in self.plan(ctx))))
