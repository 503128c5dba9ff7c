"""What the HTTP action backends (``notify``, ``silence_alert``) share: results timed from the
start of ``execute``, and a time-bounded JSON POST whose every failure becomes one line of text.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from sre_agent.domain.results import ActionResult
from sre_agent.shared.redact import redact

MAX_ERROR_CHARS = 500


def describe_error(exc: BaseException) -> str:
    """``"Type: message"`` (or just ``"Type"``), secrets redacted, length bounded."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return redact(text)[:MAX_ERROR_CHARS]


class ResultTimer:
    """Builds ``ActionResult``s whose ``duration_ms`` counts from this timer's creation."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __call__(self, ok: bool, detail: dict[str, Any], error: str | None = None) -> ActionResult:
        return ActionResult.of(ok, detail, error,
                            duration_ms=round((time.perf_counter() - self.start) * 1000, 1))


class PostFailed(Exception):
    """The POST got no HTTP answer; ``str()`` says why (safe to record)."""


async def post_json(url: str, body: Mapping[str, Any], timeout_s: float, *, peer: str,
                    transport_error: str,
                    describe: Callable[[BaseException], str] = describe_error) -> httpx.Response:
    """POST ``body`` as JSON to ``url`` within ``timeout_s`` (plus one second of grace) and
    return the response, whatever its status. Raises only ``PostFailed``:

    - a timeout → ``"{peer} timed out after {timeout_s}s"``;
    - another httpx error → ``"{transport_error}: {describe(exc)}"``;
    - anything else → ``describe(exc)``.
    """
    async def post() -> httpx.Response:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            return await client.post(url, json=body)

    try:
        return await asyncio.wait_for(post(), timeout_s + 1)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise PostFailed(f"{peer} timed out after {timeout_s:g}s") from exc
    except httpx.HTTPError as exc:
        raise PostFailed(f"{transport_error}: {describe(exc)}") from exc
    except Exception as exc:  # never raise anything else
        raise PostFailed(describe(exc)) from exc
