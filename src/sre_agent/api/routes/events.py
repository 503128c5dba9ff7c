"""GET /events: the event log as Server-Sent Events, for the dashboard and any other watcher.

Each message is one event: ``id`` is its seq, ``data`` its JSON. The stream polls the store for
events after the last one sent, so it works the same with one replica or several; a reconnecting
client sends ``Last-Event-ID`` and misses nothing. Streams end when the client goes away or the
server is shutting down, so they never hold a graceful shutdown open.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, FastAPI, Header, Query, Request
from fastapi.responses import StreamingResponse

from sre_agent.api.deps import OperatorDep, StoreDep
from sre_agent.api.schemas import ErrorOut
from sre_agent.ports import EventStore, StoreUnavailable

router = APIRouter(tags=["events"], dependencies=[OperatorDep],
                   responses={401: {"model": ErrorOut}})
log = structlog.get_logger("sre_agent.events")

POLL_S = 0.5
HEARTBEAT_S = 15.0
RETRY_MS = 2000
BATCH = 500

_DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "A ``text/event-stream``: a ``retry:`` line, then one message per new "
                       "event (``id:`` its seq, ``data:`` the event as JSON, shaped like "
                       "EventOut), and a ``: keepalive`` comment every 15 s when idle.",
        # OpenAPI 3.2 style: itemSchema describes one event of the stream.
        "content": {"text/event-stream": {"itemSchema": {
            "type": "object", "required": ["data"],
            "properties": {
                "id": {"type": "string", "description": "the event's seq"},
                "event": {"type": "string", "enum": ["message"]},
                "data": {"type": "string", "contentMediaType": "application/json",
                         "contentSchema": {"$ref": "#/components/schemas/EventOut"}},
                "retry": {"type": "integer"},
            }}}},
    },
    503: {"model": ErrorOut, "description": "store unavailable"},
}


def close_streams(app: FastAPI) -> None:
    """End every open stream of this app within one poll interval.

    uvicorn waits for open responses before it shuts down. When it runs in the main thread its
    signal handler is seen directly (see :func:`_server_exiting`); an embedder that runs uvicorn
    elsewhere (a thread, a test) calls this before setting ``server.should_exit``.
    """
    app.state.sse_closing = True


def _server_exiting() -> bool:
    """True once uvicorn's signal handler (installed in the main thread) asked it to exit."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        server = getattr(signal.getsignal(sig), "__self__", None)
        if getattr(server, "should_exit", False) is True:
            return True
    return False


def _closing(app: Any) -> bool:
    return bool(getattr(app.state, "sse_closing", False)) or _server_exiting()


def _start_after(last_event_id: str | None, since: int | None, head: int) -> int:
    if last_event_id is not None and last_event_id.strip().isdigit():
        return int(last_event_id.strip())
    if since is not None:
        return since
    return head


async def event_stream(request: Request, store: EventStore, after: int, *,
                       poll_s: float | None = None, heartbeat_s: float | None = None
                       ) -> AsyncIterator[str]:
    poll_s = poll_s or POLL_S
    heartbeat_s = heartbeat_s or HEARTBEAT_S
    yield f"retry: {RETRY_MS}\n: stream from seq {after}\n\n"
    quiet_since = time.monotonic()
    while not _closing(request.app) and not await request.is_disconnected():
        try:
            batch = await store.list_events(since_seq=after, limit=BATCH)
        except StoreUnavailable as exc:
            log.warning("events_store_unavailable", error=str(exc)[:200])
            batch = []
        for ev in batch:
            after = ev.seq
            payload = json.dumps(ev.as_dict(), separators=(",", ":"))
            yield f"id: {ev.seq}\ndata: {payload}\n\n"
        now = time.monotonic()
        if batch:
            quiet_since = now
        elif now - quiet_since >= heartbeat_s:
            quiet_since = now
            yield ": keepalive\n\n"
        if len(batch) < BATCH:
            await asyncio.sleep(poll_s)


@router.get("/events", response_class=StreamingResponse, responses=_DOC)
async def stream_events(
    request: Request, store: StoreDep,
    since: Annotated[int | None, Query(
        ge=0, description="send events after this seq (ignored when Last-Event-ID is "
                          "set); default: only events from now on")] = None,
    last_event_id: Annotated[str | None, Header(
        description="seq of the last event received; EventSource sends it on reconnect")]
    = None,
) -> StreamingResponse:
    """Server-Sent Events: every event appended to the log from now (or a given seq) on."""
    head = 0
    if last_event_id is None and since is None:
        last = await store.last_event()
        head = last.seq if last else 0
    after = _start_after(last_event_id, since, head)
    return StreamingResponse(
        event_stream(request, store, after), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no"})
