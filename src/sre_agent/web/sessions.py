"""Browser sessions: signed cookies that stand in for the operator token, and CSRF tokens.

A cookie is ``v1.<sid>.<expires>.<name>.<signature>``: a random session id, an expiry in unix
seconds, the operator's name (base64url) for the audit log, and an HMAC-SHA256 over the rest.
The signing key is derived from the operator token, so rotating the token ends every session.
The CSRF token of a session is an HMAC of its id under a second derived key: the page gets it
in a meta tag and sends it back as ``X-CSRF-Token``; a cross-site page can read neither.
Every comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

COOKIE_NAME = "sre_agent_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
DEFAULT_TTL_S = 12 * 3600
_VERSION = "v1"
_NAME = re.compile(r"[^A-Za-z0-9_.@-]")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def clean_name(name: str | None) -> str:
    """An operator name safe for ``operator:NAME`` in the audit log (64 chars at most)."""
    return _NAME.sub("", name or "")[:64]


@dataclass(frozen=True)
class Session:
    sid: str
    expires: int
    name: str


class SessionSigner:
    """Issues and checks session cookies and CSRF tokens for one operator token."""

    def __init__(self, secret: str, *, ttl_s: float = DEFAULT_TTL_S,
                 clock: Callable[[], float] = time.time) -> None:
        if not secret:
            raise ValueError("a session signer needs a non-empty secret")
        master = secret.encode("utf-8")
        self._cookie_key = hmac.new(master, b"sre-agent/session-cookie/v1", hashlib.sha256).digest()
        self._csrf_key = hmac.new(master, b"sre-agent/csrf/v1", hashlib.sha256).digest()
        self.ttl_s = ttl_s
        self._clock = clock
        self._revoked: dict[str, int] = {}

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._cookie_key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, name: str = "") -> tuple[str, Session]:
        """A new session and its cookie value."""
        session = Session(sid=secrets.token_urlsafe(18),
                          expires=int(self._clock() + self.ttl_s), name=clean_name(name))
        payload = ".".join((_VERSION, session.sid, str(session.expires),
                            _b64(session.name.encode("utf-8"))))
        return f"{payload}.{self._sign(payload)}", session

    def read(self, value: str | None) -> Session | None:
        """The session a cookie carries, or None when it is malformed, forged, old or revoked."""
        if not value or len(value) > 512:
            return None
        payload, _, signature = value.rpartition(".")
        try:
            expected = self._sign(payload)
        except UnicodeEncodeError:
            return None
        if not hmac.compare_digest(signature.encode("ascii", "replace"),
                                   expected.encode("ascii")):
            return None
        parts = payload.split(".")
        if len(parts) != 4 or parts[0] != _VERSION or not parts[2].isdigit():
            return None
        try:
            name = clean_name(_unb64(parts[3]).decode("utf-8"))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            return None
        session = Session(sid=parts[1], expires=int(parts[2]), name=name)
        now = self._clock()
        if session.expires <= now or session.sid in self._revoked:
            return None
        return session

    def revoke(self, session: Session) -> None:
        """Refuse this session from now on (kept in memory until it would have expired)."""
        now = self._clock()
        self._revoked = {sid: exp for sid, exp in self._revoked.items() if exp > now}
        self._revoked[session.sid] = session.expires

    def csrf_token(self, session: Session) -> str:
        return _b64(hmac.new(self._csrf_key, session.sid.encode("ascii"),
                             hashlib.sha256).digest())

    def csrf_valid(self, session: Session, token: str | None) -> bool:
        if not token:
            return False
        return hmac.compare_digest(token.encode("utf-8", "replace"),
                                   self.csrf_token(session).encode("ascii"))


class LoginThrottle:
    """At most ``limit`` failed logins per client within ``window_s``: guessing stays slow."""

    def __init__(self, *, limit: int = 10, window_s: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, list[float]] = {}

    def _recent(self, client: str) -> list[float]:
        now = self._clock()
        recent = [t for t in self._failures.get(client, []) if now - t < self.window_s]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent

    def blocked(self, client: str) -> bool:
        return len(self._recent(client)) >= self.limit

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:  # bound memory under a spray of client addresses
            self._failures.clear()
        self._failures.setdefault(client, []).append(self._clock())

    def succeeded(self, client: str) -> None:
        self._failures.pop(client, None)
