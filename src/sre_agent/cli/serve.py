"""``sre-agent serve``: run the HTTP server (uvicorn).

The listening socket is bound here, before the app starts, so a port that is taken fails in one
line before anything says "started", and the process can say where the dashboard is.
"""

from __future__ import annotations

import argparse
import errno
import gc
import socket
import sys
from typing import Any

from sre_agent.cli.common import fail, load_settings
from sre_agent.config import Role


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the agent's HTTP server")
    p.add_argument("--host", help="overrides SRE_AGENT_HOST")
    p.add_argument("--port", type=int, help="overrides SRE_AGENT_PORT")
    p.add_argument("--role", choices=[r.value for r in Role],
                   help="all (default): everything in one process; api: ingest webhooks and "
                        "serve operators; worker: run the pipeline (api and worker need "
                        "PostgreSQL); overrides SRE_AGENT_ROLE")
    p.set_defaults(func=run)


def tune_gc(gen0_threshold: int) -> None:
    """Fewer and shorter collector pauses under load: what start-up allocated lives as long as
    the process, so it is frozen out of every later collection's walk, and the young generation
    is collected after ``gen0_threshold`` allocations instead of CPython's 700 (an alert storm
    allocates millions of short-lived objects). The older generations keep their thresholds.
    0 leaves the collector as CPython sets it."""
    if gen0_threshold <= 0:
        return
    gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(gen0_threshold, gen1, gen2)


def tune_switch_interval(seconds: float) -> None:
    """The GIL's switch interval (``sys.setswitchinterval``); 0 leaves CPython's 5 ms. Under a
    storm the writer thread encodes and hashes 50-alert ingests holding the GIL, and every
    request on the event loop waited up to one interval for it at each handoff: 1 ms took the
    two-replica storm's p99 from 140.6/81.3 to 83.8/49.0 ms (benchmarks/storm_ab.py)."""
    if seconds > 0:
        sys.setswitchinterval(seconds)


def bind_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); raises OSError with the system's reason."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto
    # says TCP. Without it, Nagle holds the response body until the client's delayed ACK
    # (~40 ms) on every keep-alive request: Alertmanager's acknowledgements took 56 ms, not 12.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def base_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else host  # noqa: S104 - display only
    shown = f"[{shown}]" if ":" in shown else shown
    return f"http://{shown}:{port}"


def bind_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        why = "the address is already in use (another process holds the port)"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "that address is not on this machine"
    else:
        why = exc.strerror or str(exc)
    return f"cannot listen on {host}:{port}: {why}; set SRE_AGENT_PORT or pass --port"


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port),
                                   ("role", args.role)) if v is not None}
    settings = load_settings(**overrides)
    if settings is None:
        return 2
    if (error := settings.role_error()) is not None:
        return fail(error)
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        return fail(bind_error(settings.host, settings.port, exc), code=1)
    import uvicorn

    from sre_agent.api.app import create_app
    from sre_agent.observability import configure_logging

    configure_logging(settings.log_format.value, settings.log_level)
    url = base_url(settings.host, settings.port)
    if settings.log_format.value == "console" or sys.stderr.isatty():
        # A person is reading: one plain line saying where to go. JSON logs stay pure JSON.
        where = (f"{url}/health (a worker serves health and metrics only)"
                 if settings.role is Role.WORKER else f"open {url}/status for the dashboard")
        print(f"SRE Agent ({settings.role.value}) listening on {url}: {where}",
              file=sys.stderr, flush=True)
    app = create_app(settings)
    tune_gc(settings.gc_gen0_threshold)
    tune_switch_interval(settings.switch_interval_s)
    config = uvicorn.Config(app, log_level="warning", access_log=False, proxy_headers=False)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
