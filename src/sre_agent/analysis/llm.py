"""LLM analysis through LangChain and any OpenAI-compatible endpoint.

The only module that imports LangChain (and the OpenAI SDK). Import it only when the LLM is
configured (an API key or a base URL); ``FallbackAnalyzer.from_settings`` does so lazily.

Every request is bounded and deterministic: ``max_tokens`` (``settings.max_output_tokens``),
``temperature`` (default 0) and ``seed`` (when set) are sent on every call, and each request
is cut at ``settings.timeout_s`` (the coroutine is cancelled, which closes the connection; a
one-slot server such as llama.cpp then stops generating). Retries are ours, not the SDK's, and
only for errors a retry can fix: connection refused/reset, 429 and 5xx. A timeout is never
retried: the retry would queue behind the request still running on a one-slot server.

One analysis is:
1. an optional, bounded investigation (``settings.investigation_mode``):
   - ``native``: the API's tool calls, our own loop over ``bind_tools`` and ``ToolMessage``s;
   - ``prompted``: the model asks for a tool in the small JSON protocol of
     ``analysis/protocol.py``, one tool per round;
   either way at most ``settings.max_tool_calls`` tools run (calls beyond the budget are
   answered with an error instead of being run);
2. one final structured answer through ``with_structured_output(schema,
   method=settings.structured_output_method, include_raw=True)``;
3. ``coerce_llm_output`` then ``validate_proposals``.

The schema is given to LangChain as a JSON-schema dict rather than the pydantic class: with a
pydantic class and ``method="json_schema"`` the OpenAI SDK parses the answer inside the HTTP
call and raises there, so ``include_raw=True`` cannot hand back the raw answer, and one bad
action would sink the whole diagnosis. With the dict every method yields a plain dict (or a
parsing error and the raw message) and our own coercion decides.

Same input, same answer, with a prompt cache: at temperature 0 a server such as llama.cpp is
deterministic for the same batches, but its prompt cache changes the batches. A repeat of a
prompt that is wholly cached re-evaluates only the last prompt token, alone, and that token's
slightly different numbers can flip a near-tie (seen: ``silence_alert`` on one run,
``start_container`` on the next). With ``settings.primes_prompt_cache`` (default with a base URL)
each analysis first sends the static system prompt alone, for one output token: the cache then
always holds exactly that prefix, computed once, and the incident after it is always evaluated
as one fresh batch from the same position, whether or not the same incident came before. It
costs one short request (a cached prefix and one token); its tokens are not the incident's.

Failures raise an ``LLMError`` subclass (``LLMTimeout``, ``LLMHTTPError``, ``LLMInvalidOutput``,
``LLMRefusal``), each carrying the tokens spent so far; the chain falls back on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any

import httpx
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_openai import ChatOpenAI
from langchain_openai.chat_models.base import OpenAIRefusalError
from pydantic import BaseModel

from sre_agent.analysis.llm_errors import as_llm_error, backoff_s, first_line, retryable
from sre_agent.analysis.prompts import (
    EXPLANATION_INSTRUCTION,
    FINAL_INSTRUCTION,
    INVESTIGATION_INSTRUCTION,
    PROMPTED_INVESTIGATION_INSTRUCTION,
    PROMPTED_NEXT_INSTRUCTION,
    build_user_message,
    evidence_gaps,
    system_prompt,
    tool_result_message,
)
from sre_agent.analysis.protocol import (
    ProtocolError,
    parse_tool_request,
    protocol_text,
    tool_request_json_schema,
)
from sre_agent.analysis.tools import (
    GuardedInvestigation,
    InvestigationTools,
    build_langchain_tools,
    tool_error,
)
from sre_agent.analysis.validation import (
    LLMDiagnosis,
    LLMError,
    LLMHTTPError,
    LLMInvalidOutput,
    LLMRefusal,
    LLMTimeout,
    coerce_llm_explanation,
    coerce_llm_output,
    llm_explanation_json_schema,
    llm_output_json_schema,
    validate_proposals,
)
from sre_agent.config import Investigation, LLMSettings, StructuredOutputMethod
from sre_agent.domain.diagnosis import Diagnosis, Engine
from sre_agent.domain.evidence import AlertContext, Evidence, ResolvedTarget

__all__ = [
    "LLMDiagnosis",
    "LLMError",
    "LLMHTTPError",
    "LLMInvalidOutput",
    "LLMRefusal",
    "LLMTimeout",
    "LangChainAnalyzer",
    "retryable",
]


SCHEMA_NAME = LLMDiagnosis.__name__  # the function name under method="function_calling"


def _tokens(message: BaseMessage) -> int:
    usage = getattr(message, "usage_metadata", None)
    return int(usage.get("total_tokens", 0)) if usage else 0


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        if text.rstrip().endswith("```"):
            text = text.rstrip()[:-3]
    return text.strip()


def _raw_object(raw: AIMessage) -> dict[str, Any] | None:
    """The answer's JSON object from the raw message: content, else the first tool call."""
    text = raw.text
    if text and text.strip():
        try:
            value = json.loads(_strip_fences(text))
        except ValueError:
            return None
        return value if isinstance(value, dict) else None
    for call in raw.tool_calls:
        if call["name"] == SCHEMA_NAME:
            return dict(call["args"])
    return None


def _tool_output_error(output: str) -> str | None:
    """The error of a tool's JSON output, if it is one (for the diagnosis' tool log)."""
    try:
        value = json.loads(output)
    except ValueError:
        return None
    error = value.get("error") if isinstance(value, dict) else None
    return str(error)[:200] if error else None


def _refusal(raw: AIMessage) -> str | None:
    value = raw.additional_kwargs.get("refusal")
    return str(value) if value else None


class LangChainAnalyzer:
    """``Analyzer`` backed by ``ChatOpenAI``. Raises ``LLMError`` subclasses on failure."""

    name = "llm"

    def __init__(self, settings: LLMSettings, tools: InvestigationTools | None = None, *,
                 tool_timeout_s: float = 10.0) -> None:
        if not settings.enabled:
            raise ValueError("LangChainAnalyzer needs SRE_AGENT_LLM__BASE_URL (a local server) "
                             "or SRE_AGENT_LLM__API_KEY")
        self._settings = settings
        self._tools = tools
        self._tool_timeout_s = tool_timeout_s
        self.investigation = settings.investigation_mode if tools is not None else (
            Investigation.OFF)
        self._model = ChatOpenAI(
            model=settings.model,
            base_url=settings.base_url,
            api_key=settings.effective_api_key,
            timeout=settings.timeout_s,
            max_retries=0,  # ours: see retryable()
            max_completion_tokens=settings.max_output_tokens,  # llama.cpp: an alias
            temperature=settings.temperature,
            seed=settings.seed,
            # Our own client: langchain-openai otherwise shares one process-wide async client,
            # which breaks when an analyzer lives on a different event loop than the first.
            http_async_client=httpx.AsyncClient(timeout=settings.timeout_s),
        )
        self._structured: Runnable[Any, Any] = self._model.with_structured_output(
            llm_output_json_schema(),
            method=settings.structured_output_method.value,
            include_raw=True,
        )
        self._explainer: Runnable[Any, Any] = self._model.with_structured_output(
            llm_explanation_json_schema(),
            method=settings.structured_output_method.value,
            include_raw=True,
        )
        self._protocol: Runnable[Any, Any] = self._protocol_model(settings)
        self._primer: Runnable[Any, Any] = self._model.bind(max_completion_tokens=1)
        self._system = system_prompt(
            protocol_text() if self.investigation is Investigation.PROMPTED else None)

    def _protocol_model(self, settings: LLMSettings) -> Runnable[Any, Any]:
        """The model for a prompted tool round: JSON enforced when the server can."""
        method = settings.structured_output_method
        if method is StructuredOutputMethod.JSON_SCHEMA:
            return self._model.bind(response_format={"type": "json_schema", "json_schema": {
                "name": "ToolRequest", "schema": tool_request_json_schema(), "strict": False}})
        if method is StructuredOutputMethod.JSON_MODE:
            return self._model.bind(response_format={"type": "json_object"})
        return self._model

    @property
    def model(self) -> str:
        return self._settings.model

    async def analyse(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        return await self._answer(ctx, targets, evidence, explain_only=False)

    async def explain(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence]) -> Diagnosis:
        """Only the text (summary, probable cause, evidence) for an incident whose actions are
        decided already (``combine.py`` rule 5): no investigation, nothing that is discarded."""
        return await self._answer(ctx, targets, evidence, explain_only=True)

    async def _answer(self, ctx: AlertContext, targets: list[ResolvedTarget],
                      evidence: list[Evidence], *, explain_only: bool) -> Diagnosis:
        started = time.perf_counter()
        user = build_user_message(ctx, targets, evidence)
        if self._settings.primes_prompt_cache:
            await self._prime()
        messages: list[BaseMessage] = [SystemMessage(self._system)]
        tokens = 0
        tool_log: list[dict[str, Any]] = []
        names = [t.name for t in targets]
        if explain_only:
            messages.append(HumanMessage(user))
        elif self._tools is not None and self.investigation is Investigation.NATIVE:
            lc_tools = build_langchain_tools(self._tools, names, timeout_s=self._tool_timeout_s)
            messages.append(HumanMessage(f"{user}\n\n{INVESTIGATION_INSTRUCTION}"))
            tokens = await self._investigate(messages, lc_tools, tool_log)
        elif (self._tools is not None and self.investigation is Investigation.PROMPTED
              and (gaps := evidence_gaps(targets, evidence))):
            guarded = GuardedInvestigation(self._tools, names, timeout_s=self._tool_timeout_s)
            ask = PROMPTED_INVESTIGATION_INSTRUCTION.format(gaps="; ".join(gaps))
            messages.append(HumanMessage(f"{user}\n\n{ask}"))
            tokens = await self._investigate_prompted(messages, guarded, tool_log)
        else:
            messages.append(HumanMessage(user))
        messages.append(HumanMessage(EXPLANATION_INSTRUCTION if explain_only
                                     else FINAL_INSTRUCTION))

        result = await self._invoke(self._explainer if explain_only else self._structured,
                                    messages, tokens)
        raw = result.get("raw") if isinstance(result, dict) else None
        if not isinstance(raw, AIMessage):
            raise LLMInvalidOutput("no message in the structured-output result", tokens=tokens)
        tokens += _tokens(raw)
        refusal = _refusal(raw)
        if refusal:
            raise LLMRefusal(refusal[:200], tokens=tokens)
        parsed = result.get("parsed")
        if isinstance(parsed, BaseModel):
            parsed = parsed.model_dump(mode="json")
        if not isinstance(parsed, dict):
            # The schema parser failed or found nothing: read the raw answer ourselves (a
            # function_calling server that answered in content, or a bad action kind).
            parsed = _raw_object(raw)
        if parsed is None:
            error = result.get("parsing_error")
            if isinstance(error, OpenAIRefusalError):
                raise LLMRefusal(str(error)[:200], tokens=tokens)
            if error is not None:
                detail = f"{type(error).__name__}: {first_line(error)}"
            else:
                detail = "answer is not a JSON object" if raw.text.strip() else "empty answer"
            raise LLMInvalidOutput(detail, tokens=tokens)
        try:
            diagnosis = coerce_llm_explanation(parsed) if explain_only else (
                coerce_llm_output(parsed)[0])
        except LLMError as exc:
            exc.tokens = tokens
            raise
        model_name = raw.response_metadata.get("model_name") or self._settings.model
        diagnosis = diagnosis.model_copy(update={
            "engine": Engine.LLM,
            "model": str(model_name),
            "tokens": tokens,
            "latency_ms": round((time.perf_counter() - started) * 1000, 3),
            "tool_calls": tool_log,
        })
        return validate_proposals(diagnosis, targets)

    async def _prime(self) -> None:
        """The static system prompt alone, one output token: pins the server's prompt cache
        to that prefix (see the module doc). Best effort: a failure here is not the analysis'."""
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._primer.ainvoke([SystemMessage(self._system)]),
                                   timeout=self._settings.timeout_s)

    async def _invoke(self, runnable: Runnable[Any, Any], messages: Sequence[BaseMessage],
                      tokens: int) -> Any:
        """One request, cut at ``timeout_s``; retried only on errors a retry can fix."""
        attempt = 0
        while True:
            try:
                return await asyncio.wait_for(runnable.ainvoke(list(messages)),
                                              timeout=self._settings.timeout_s)
            except TimeoutError:
                raise LLMTimeout("request timed out", tokens=tokens) from None
            except Exception as exc:
                if attempt < self._settings.max_retries and retryable(exc):
                    await asyncio.sleep(backoff_s(exc, attempt))
                    attempt += 1
                    continue
                raise as_llm_error(exc, tokens) from exc

    async def _investigate_prompted(self, messages: list[BaseMessage],
                                    guarded: GuardedInvestigation,
                                    tool_log: list[dict[str, Any]]) -> int:
        """Prompted tool rounds, appending to ``messages``: one tool per round, at most
        ``max_tool_calls`` rounds. An answer that is not a valid request ends the
        investigation (the final answer is still asked for). Returns the tokens spent."""
        tokens = 0
        for _round in range(self._settings.max_tool_calls):
            reply = await self._invoke(self._protocol, messages, tokens)
            if not isinstance(reply, AIMessage):
                raise LLMInvalidOutput("tool round returned no message", tokens=tokens)
            tokens += _tokens(reply)
            if _refusal(reply):
                raise LLMRefusal(str(_refusal(reply))[:200], tokens=tokens)
            messages.append(AIMessage(reply.text))
            try:
                request = parse_tool_request(reply.text)
            except ProtocolError as exc:
                tool_log.append({"tool": None, "args": {}, "error": str(exc)[:200]})
                break
            if request is None:
                break
            output = await guarded.call(request.tool, request.args)
            tool_log.append({"tool": request.tool, "args": request.args,
                             "error": _tool_output_error(output)})
            messages.append(HumanMessage(
                f"{tool_result_message(request.tool, output)}\n\n{PROMPTED_NEXT_INSTRUCTION}"))
        return tokens

    async def _investigate(self, messages: list[BaseMessage], lc_tools: list[BaseTool],
                           tool_log: list[dict[str, Any]]) -> int:
        """Run the tool loop, appending to ``messages``. Returns the tokens spent."""
        by_name = {t.name: t for t in lc_tools}
        bound = self._model.bind_tools(lc_tools)
        budget = self._settings.max_tool_calls
        tokens = 0
        # Each round makes one model call; a round without tool calls ends the loop, so at most
        # budget + 1 calls happen here.
        for _round in range(budget + 1):
            reply = await self._invoke(bound, messages, tokens)
            if not isinstance(reply, AIMessage):
                raise LLMInvalidOutput("tool round returned no message", tokens=tokens)
            tokens += _tokens(reply)
            messages.append(reply)
            if _refusal(reply):
                raise LLMRefusal(str(_refusal(reply))[:200], tokens=tokens)
            calls: list[tuple[str | None, str | None, dict[str, Any] | None]] = [
                (c["id"], c["name"], c["args"]) for c in reply.tool_calls]
            calls += [(c["id"], c["name"], None) for c in reply.invalid_tool_calls]
            if not calls:
                break
            for call_id, name, args in calls:
                if budget <= 0:
                    output = tool_error("tool call budget exhausted; give your final answer")
                elif args is None:
                    budget -= 1
                    output = tool_error("tool arguments were not valid JSON")
                elif name not in by_name:
                    budget -= 1
                    output = tool_error(f"unknown tool {str(name)[:100]!r}")
                else:
                    budget -= 1
                    output = await self._run_tool(by_name[name], args)
                    tool_log.append({"tool": name, "args": args,
                                     "error": _tool_output_error(output)})
                messages.append(ToolMessage(content=output, tool_call_id=call_id or ""))
            if budget <= 0:
                break
        return tokens

    @staticmethod
    async def _run_tool(tool: BaseTool, args: dict[str, Any]) -> str:
        try:
            output = await tool.ainvoke(args)
        except Exception as exc:  # bad arguments (schema validation) and the like
            return tool_error(f"tool call rejected: {type(exc).__name__}: {str(exc)[:200]}")
        return output if isinstance(output, str) else json.dumps(output, default=str)
