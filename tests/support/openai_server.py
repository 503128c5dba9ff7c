"""A real local HTTP server speaking the OpenAI Chat Completions protocol, answering from a script.

uvicorn serves a small Starlette app in a background thread on 127.0.0.1 and a free port.
``POST /v1/chat/completions`` (and ``/chat/completions``) records the request (path, headers,
JSON body) and answers with the next scripted step:

- ``answer(obj)``: the final structured answer. As content (JSON text) normally; as a call to
  the forced function when the request's ``tool_choice`` names one (what
  ``with_structured_output(method="function_calling")`` sends). The only part of the request
  the server honours beyond recording it.
- ``content(text)``: a plain assistant message.
- ``tool_call(name, args)`` / ``tool_calls((name, args), ...)``: ``finish_reason: tool_calls``.
- ``delay(seconds, then)``: sleep before answering with ``then``.
- ``http_error(status, message)``: an OpenAI-style error body.
- ``garbage(text)``: content that is not JSON; ``raw_body(text)``: an HTTP 200 that is not JSON.
- ``refusal(text)``: ``"refusal"`` set in the message, content null.

When the script runs out, the server answers 500 ``script exhausted`` (or repeats the last step
with ``script(steps, repeat_last=True)``). Usage is reported on every completion
(``usage=(prompt, completion)`` per step).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

DEFAULT_USAGE = (100, 20)


@dataclass(frozen=True)
class Step:
    kind: str  # answer | content | tool_calls | error | raw | refusal
    payload: Any = None
    delay_s: float = 0.0
    status: int = 200
    usage: tuple[int, int] = DEFAULT_USAGE


def answer(obj: dict[str, Any] | str, *, usage: tuple[int, int] = DEFAULT_USAGE) -> Step:
    text = obj if isinstance(obj, str) else json.dumps(obj)
    return Step("answer", text, usage=usage)


def content(text: str, *, usage: tuple[int, int] = DEFAULT_USAGE) -> Step:
    return Step("content", text, usage=usage)


def tool_calls(*calls: tuple[str, dict[str, Any]],
               usage: tuple[int, int] = DEFAULT_USAGE) -> Step:
    return Step("tool_calls", list(calls), usage=usage)


def tool_call(name: str, args: dict[str, Any], *,
              usage: tuple[int, int] = DEFAULT_USAGE) -> Step:
    return tool_calls((name, args), usage=usage)


def delay(seconds: float, then: Step | None = None) -> Step:
    base = then if then is not None else content("late")
    return Step(base.kind, base.payload, delay_s=seconds, status=base.status, usage=base.usage)


def http_error(status: int, message: str = "scripted failure",
               type_: str = "server_error") -> Step:
    return Step("error", {"error": {"message": message, "type": type_, "param": None,
                                    "code": None}}, status=status)


def garbage(text: str = "this is not json {{{") -> Step:
    return Step("content", text)


def raw_body(text: str = "<html>bad gateway</html>", content_type: str = "text/html") -> Step:
    return Step("raw", (text, content_type))


def refusal(text: str = "I can't help with that.") -> Step:
    return Step("refusal", text)


@dataclass
class RecordedRequest:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    def text(self) -> str:
        """All message contents, joined: handy for assertions on the prompt."""
        parts: list[str] = []
        for m in self.messages:
            c = m.get("content")
            if isinstance(c, list):
                parts.extend(str(b.get("text", "")) for b in c if isinstance(b, dict))
            elif c:
                parts.append(str(c))
        return "\n".join(parts)

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools", [])]


@dataclass
class OpenAIServer:
    host: str = "127.0.0.1"
    requests: list[RecordedRequest] = field(default_factory=list)
    handling_s: list[float] = field(default_factory=list)
    port: int = 0
    _steps: list[Step] = field(default_factory=list)
    _repeat_last: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def script(self, steps: list[Step], *, repeat_last: bool = False) -> None:
        with self._lock:
            self._steps = list(steps)
            self._repeat_last = repeat_last

    def _next_step(self) -> Step | None:
        with self._lock:
            if not self._steps:
                return None
            if len(self._steps) == 1 and self._repeat_last:
                return self._steps[0]
            return self._steps.pop(0)

    # --- protocol ------------------------------------------------------------------------

    def _completion(self, body: dict[str, Any], message: dict[str, Any], finish: str,
                    usage: tuple[int, int]) -> dict[str, Any]:
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish,
                         "logprobs": None}],
            "usage": {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                      "total_tokens": usage[0] + usage[1]},
        }

    def _tool_call(self, name: str, args: dict[str, Any] | str) -> dict[str, Any]:
        return {"id": f"call_{next(self._ids)}", "type": "function",
                "function": {"name": name,
                             "arguments": args if isinstance(args, str) else json.dumps(args)}}

    async def _chat(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            body = json.loads(await request.body())
        except ValueError:
            return JSONResponse({"error": {"message": "request body is not JSON"}},
                                status_code=400)
        self.requests.append(RecordedRequest(
            path=request.url.path, headers={k.lower(): v for k, v in request.headers.items()},
            body=body, at=time.time()))
        step = self._next_step()
        if step is None:
            return JSONResponse({"error": {"message": "script exhausted",
                                           "type": "server_error"}}, status_code=500)
        if step.delay_s:
            await asyncio.sleep(step.delay_s)
        try:
            return self._respond(body, step)
        finally:
            self.handling_s.append(time.perf_counter() - started - step.delay_s)

    def _respond(self, body: dict[str, Any], step: Step) -> Response:
        if step.kind == "error":
            return JSONResponse(step.payload, status_code=step.status)
        if step.kind == "raw":
            text, content_type = step.payload
            return Response(text, status_code=200, media_type=content_type)
        message: dict[str, Any] = {"role": "assistant", "content": None, "refusal": None}
        finish = "stop"
        if step.kind == "content":
            message["content"] = step.payload
        elif step.kind == "refusal":
            message["refusal"] = step.payload
        elif step.kind == "tool_calls":
            message["tool_calls"] = [self._tool_call(n, a) for n, a in step.payload]
            finish = "tool_calls"
        elif step.kind == "answer":
            forced = body.get("tool_choice")
            if isinstance(forced, dict) and forced.get("type") == "function":
                name = forced["function"]["name"]
                message["tool_calls"] = [self._tool_call(name, step.payload)]
                finish = "tool_calls"
            else:
                message["content"] = step.payload
        return JSONResponse(self._completion(body, message, finish, step.usage))

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> None:
        app = Starlette(routes=[
            Route("/v1/chat/completions", self._chat, methods=["POST"]),
            Route("/chat/completions", self._chat, methods=["POST"]),
        ])
        # Bind port 0 through uvicorn itself (its own listening socket gets TCP_NODELAY on the
        # accepted connections; a socket handed in via ``sockets=`` costs 40 ms of Nagle per
        # keep-alive request) and read the real port once started.
        config = uvicorn.Config(app, host=self.host, port=0, log_level="warning",
                                lifespan="off", access_log=False, timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="openai-server",
                                        daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        self.port = int(self._server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


@contextlib.contextmanager
def running_openai_server() -> Iterator[OpenAIServer]:
    server = OpenAIServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def openai_server() -> Iterator[OpenAIServer]:
    with running_openai_server() as server:
        yield server
