"""Slack's request signature (``X-Slack-Signature: v0=HEX``): HMAC-SHA256 of
``v0:{X-Slack-Request-Timestamp}:{raw body}`` with the app's signing secret, compared in
constant time; a timestamp more than ``max_age_s`` (5 minutes) from now is refused, so a
captured request cannot be replayed later."""

from __future__ import annotations

import hashlib
import hmac

VERSION = "v0"
MAX_AGE_S = 300.0


class BadSignature(Exception):
    """Why a request is not Slack's (safe to answer: it names no secret)."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = f"{VERSION}:{timestamp}:".encode() + body
    return f"{VERSION}=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(secret: str, timestamp: str | None, signature: str | None, body: bytes, now: float,
           max_age_s: float = MAX_AGE_S) -> None:
    """Raise ``BadSignature`` unless the request is Slack's and fresh."""
    if not timestamp or not signature:
        raise BadSignature("missing X-Slack-Request-Timestamp or X-Slack-Signature")
    try:
        ts = int(timestamp)
    except ValueError:
        raise BadSignature("X-Slack-Request-Timestamp is not a number") from None
    if abs(now - ts) > max_age_s:
        raise BadSignature("request timestamp is more than 5 minutes from now (replayed?)")
    expected = sign(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise BadSignature("signature does not match")
