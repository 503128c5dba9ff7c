"""``sre-agent serve``: run the HTTP server (uvicorn)."""

from __future__ import annotations

import argparse
from typing import Any

from sre_agent.cli.common import load_settings


def register(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the agent's HTTP server")
    p.add_argument("--host", help="overrides SRE_AGENT_HOST")
    p.add_argument("--port", type=int, help="overrides SRE_AGENT_PORT")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    settings = load_settings(**overrides)
    if settings is None:
        return 2
    import uvicorn

    from sre_agent.api.app import create_app
    from sre_agent.observability import configure_logging

    configure_logging(settings.log_format.value, settings.log_level)
    app = create_app(settings)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                access_log=False, proxy_headers=False)
    return 0
