"""What the OpenAI SDK and LangChain raise, mapped to the analyzer's error family, and which
errors a retry can fix (connection failures, 429, 5xx; never a timeout: on a one-slot server a
retry would queue behind the request that timed out)."""

from __future__ import annotations

import contextlib

import openai
from langchain_openai.chat_models.base import OpenAIRefusalError

from sre_agent.analysis.validation import (
    LLMError,
    LLMHTTPError,
    LLMInvalidOutput,
    LLMRefusal,
    LLMTimeout,
)

MAX_BACKOFF_S = 4.0


def retryable(exc: BaseException) -> bool:
    """Errors a retry can fix: connection refused/reset, 429, 5xx. Never a timeout."""
    if isinstance(exc, openai.APITimeoutError | TimeoutError):
        return False
    if isinstance(exc, openai.APIConnectionError):
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return False


def backoff_s(exc: BaseException, attempt: int) -> float:
    delay = 0.5 * 2 ** attempt
    response = getattr(exc, "response", None)
    header = response.headers.get("retry-after") if response is not None else None
    if header:
        with contextlib.suppress(ValueError):
            delay = float(header)
    return float(max(0.0, min(delay, MAX_BACKOFF_S)))


def first_line(error: BaseException | None, limit: int = 150) -> str:
    text = str(error).strip().splitlines()[0] if error is not None and str(error).strip() else ""
    return text[:limit]


def as_llm_error(exc: Exception, tokens: int) -> LLMError:
    """Map what LangChain / the OpenAI SDK raised to our error family."""
    if isinstance(exc, LLMError):
        exc.tokens += tokens
        return exc
    if isinstance(exc, openai.LengthFinishReasonError):
        usage = getattr(exc.completion, "usage", None)
        spent = int(getattr(usage, "total_tokens", 0) or 0)
        return LLMInvalidOutput("answer cut at the output token limit (max_output_tokens)",
                                tokens=tokens + spent)
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return LLMRefusal("the server's content filter stopped the answer", tokens=tokens)
    if isinstance(exc, openai.APITimeoutError):
        return LLMTimeout("request timed out", tokens=tokens)
    if isinstance(exc, openai.APIStatusError):
        return LLMHTTPError(f"HTTP {exc.status_code}: {str(exc.message)[:200]}",
                            status=exc.status_code, tokens=tokens)
    if isinstance(exc, openai.APIConnectionError):
        return LLMHTTPError(f"connection failed: {str(exc)[:200]}", tokens=tokens)
    if isinstance(exc, OpenAIRefusalError):
        return LLMRefusal(str(exc)[:200], tokens=tokens)
    # A body that is not a completion (an HTML error page, a proxy's text) surfaces as
    # ValueError / TypeError / KeyError from langchain-openai, or AttributeError from the SDK's
    # parse() path used when response_format is set.
    if isinstance(exc, openai.APIError | ValueError | KeyError | TypeError | AttributeError):
        return LLMInvalidOutput(f"malformed response ({type(exc).__name__}: {first_line(exc)})",
                                tokens=tokens)
    return LLMError(f"{type(exc).__name__}: {str(exc)[:200]}", tokens=tokens)
