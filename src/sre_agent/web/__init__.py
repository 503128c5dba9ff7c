"""The operator dashboard: templates, static files, view shaping, reports and browser sessions.

Nothing in this package imports FastAPI; ``sre_agent.api.routes.web`` serves it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

WEB_DIR = Path(__file__).resolve().parent
TEMPLATES_DIR = WEB_DIR / "templates"
STATIC_DIR = WEB_DIR / "static"


def prefers_html(accept: str | None) -> bool:
    """True when an Accept header asks for HTML before JSON (a browser navigating).

    ``*/*`` alone (curl, httpx, Alertmanager) means JSON, so programs keep the API they know.
    """
    if not accept:
        return False
    best_html = best_json = -1.0
    for position, part in enumerate(accept.lower().split(",")[:50]):
        media, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        # Earlier entries win ties, as browsers list their preference first.
        score = quality - position * 1e-6
        media = media.strip()
        if media in ("text/html", "application/xhtml+xml") and quality > 0:
            best_html = max(best_html, score)
        elif media == "application/json" or media.endswith("+json"):
            best_json = max(best_json, score)
    return best_html > best_json


def safe_next(target: str | None, default: str = "/status") -> str:
    """A local path to go back to after login; anything else (other hosts, ``//x``) → default."""
    if not target or len(target) > 500 or not target.startswith("/"):
        return default
    if target.startswith("//") or "\\" in target or any(ord(c) < 32 for c in target):
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return default  # never back to the login form: that would loop
    return target
