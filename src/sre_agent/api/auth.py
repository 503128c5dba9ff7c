"""Credential checks. Every comparison is constant-time (hmac.compare_digest)."""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

from pydantic import SecretStr

from sre_agent.config import Settings


def _same(given: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.get_secret_value().encode("utf-8"))


def operator_token_matches(settings: Settings, given: str) -> bool:
    """For the login form: is this the operator token (constant-time)?"""
    return settings.operator_token is not None and _same(given, settings.operator_token)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def webhook_authorized(settings: Settings, header: str | None) -> bool:
    if not settings.webhook_auth_configured:
        return True
    if not header:
        return False
    scheme, _, value = header.partition(" ")
    ok = False
    if scheme.lower() == "bearer" and settings.webhook_token is not None:
        ok = _same(value.strip(), settings.webhook_token)
    elif scheme.lower() == "basic" and settings.webhook_password is not None:
        try:
            user, _, pw = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        # Both compared every time, so timing does not tell which one was wrong.
        user_ok = hmac.compare_digest(user.encode(), (settings.webhook_username or "").encode())
        ok = _same(pw, settings.webhook_password) and user_ok
    return ok


def operator_authorized(settings: Settings, header: str | None) -> bool:
    if settings.operator_token is None:
        return True
    token = bearer_token(header)
    return token is not None and _same(token, settings.operator_token)


def cross_site_request(headers: Mapping[str, str], host: str | None) -> bool:
    """True when a browser says the request comes from another site or origin.

    Browsers send ``Sec-Fetch-Site`` and ``Origin`` on state-changing requests; programs send
    neither, so they pass. Used where no credential stops a forged cross-site request.
    """
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:  # the browser's own verdict, when it gives one
        return fetch_site not in ("same-origin", "none")
    origin = headers.get("origin")
    if origin is None:
        return False
    if origin == "null" or not host:
        return True
    return urlsplit(origin).netloc.lower() != host.lower()
