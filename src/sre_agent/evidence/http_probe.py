"""HTTP health probes of target containers (read-only, time-bounded, never raises).

Only URLs that the operator configured are probed: the container label ``sre-agent.health-url``
(carried by a verified ``ResolvedTarget``) or the ``default_urls`` mapping from settings. URLs in
alert text are never probed: alert text is untrusted.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Any
from urllib.parse import urlsplit

import httpx

from sre_agent.domain.evidence import AlertContext, Evidence, EvidenceStatus, ResolvedTarget
from sre_agent.evidence.recent import RecentReads
from sre_agent.shared.redact import redact

SOURCE = "http_probe"
MAX_BODY_BYTES = 4096
BODY_EXCERPT_CHARS = 300


def _valid_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class HttpProbe:
    """GET each target's health URL; 2xx is healthy. Implements ``EvidenceSource``."""

    name = "http_probe"

    def __init__(self, timeout_s: float, default_urls: dict[str, str] | None = None,
                 recent_s: float = 0.0) -> None:
        self.timeout_s = timeout_s
        self.default_urls = dict(default_urls or {})
        # A URL's answer, shared with incidents asking within recent_s (evidence/recent.py).
        self._recent: RecentReads[Evidence] = RecentReads(
            recent_s, keep=lambda ev: ev.status is EvidenceStatus.OK)
        # Loading the CA bundle costs ~30 ms: do it once, not for every probe's client.
        self._ssl = ssl.create_default_context()

    def url_for(self, target: ResolvedTarget) -> str | None:
        return target.health_url or self.default_urls.get(target.name)

    async def probe(self, url: str, *, name: str | None = None) -> Evidence:
        """One GET with an overall deadline of ``timeout_s``; redirects are not followed."""
        start = time.perf_counter()
        data: dict[str, Any] = {"url": url, "status_code": None, "healthy": False,
                                "response_ms": None}
        status, error = EvidenceStatus.ERROR, None
        if not _valid_url(url):
            error = "not an http(s) URL"
        else:
            try:
                client = httpx.AsyncClient(timeout=httpx.Timeout(self.timeout_s),
                                           follow_redirects=False, trust_env=False,
                                           verify=self._ssl)
                async with asyncio.timeout(self.timeout_s), client, client.stream(
                        "GET", url) as response:
                    body = b""
                    async for chunk in response.aiter_bytes():
                        body += chunk
                        if len(body) >= MAX_BODY_BYTES:
                            break
                data["status_code"] = response.status_code
                data["healthy"] = 200 <= response.status_code < 300
                data["body_excerpt"] = redact(
                    body[:MAX_BODY_BYTES].decode("utf-8", errors="replace").strip()
                )[:BODY_EXCERPT_CHARS]
                status = EvidenceStatus.OK
            except TimeoutError:
                error = f"timed out after {self.timeout_s:g}s"
            except httpx.TimeoutException as exc:
                error = f"timed out after {self.timeout_s:g}s ({type(exc).__name__})"
            except Exception as exc:  # connection refused, DNS, protocol errors...
                error = redact(f"{type(exc).__name__}: {exc}")[:500]
        elapsed_ms = round((time.perf_counter() - start) * 1000, 1)
        data["response_ms"] = elapsed_ms
        return Evidence(source=SOURCE, name=name or url, status=status, data=data, error=error,
                        duration_ms=elapsed_ms)

    async def collect(self, ctx: AlertContext, targets: list[ResolvedTarget]) -> list[Evidence]:
        """Probe every target that has a configured health URL, concurrently."""
        jobs: dict[str, str] = {}
        for target in targets:
            url = self.url_for(target)
            if url and target.name not in jobs:
                jobs[target.name] = url

        async def one(target_name: str, url: str) -> Evidence:
            start = time.perf_counter()
            ev, age = await self._recent.get(url, lambda: self.probe(url, name=target_name))
            data = {**ev.data, "target": target_name}
            if age is None:
                return ev.model_copy(update={"data": data})
            return ev.model_copy(update={
                "name": target_name, "data": {**data, "cached_age_s": age},
                "duration_ms": round((time.perf_counter() - start) * 1000, 1)})

        return list(await asyncio.gather(*(one(n, u) for n, u in jobs.items())))
