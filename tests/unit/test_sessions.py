"""Browser sessions: signed cookies (tampering, expiry, revocation) and CSRF tokens."""

from __future__ import annotations

import pytest

from sre_agent.web import prefers_html, safe_next
from sre_agent.web.sessions import LoginThrottle, SessionSigner, clean_name


class Clock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def signer(clock: Clock | None = None, secret: str = "operator-token-1",
           ttl_s: float = 3600) -> SessionSigner:
    return SessionSigner(secret, ttl_s=ttl_s, clock=clock or Clock())


def test_issued_cookie_reads_back_with_name_and_expiry() -> None:
    clock = Clock()
    s = signer(clock)
    cookie, session = s.issue("alice")
    read = s.read(cookie)
    assert read == session
    assert read is not None and read.name == "alice" and read.expires == int(clock.now + 3600)


@pytest.mark.parametrize("mutate", [
    lambda c: c[:-1] + ("A" if c[-1] != "A" else "B"),        # signature changed
    lambda c: c.replace(".", ".x", 1),                          # session id changed
    lambda c: ".".join([*c.split(".")[:2], "9999999999", *c.split(".")[3:]]),  # expiry pushed
    lambda c: ".".join([*c.split(".")[:3], "YWRtaW4", c.split(".")[4]]),  # name swapped
    lambda c: c.rpartition(".")[0],                             # signature dropped
    lambda c: "v2" + c[2:],                                     # version changed
    lambda c: "",
    lambda c: "garbage",
    lambda c: c + "é",
    lambda c: "x" * 600,
])
def test_any_tampering_invalidates_the_cookie(mutate: object) -> None:
    s = signer()
    cookie, _ = s.issue("alice")
    assert callable(mutate)
    assert s.read(mutate(cookie)) is None


def test_cookie_expires() -> None:
    clock = Clock()
    s = signer(clock, ttl_s=60)
    cookie, _ = s.issue()
    clock.now += 59
    assert s.read(cookie) is not None
    clock.now += 1
    assert s.read(cookie) is None


def test_another_operator_token_signs_differently() -> None:
    cookie, session = signer(secret="operator-token-1").issue()
    other = signer(secret="operator-token-2")
    assert other.read(cookie) is None
    assert not other.csrf_valid(session, signer(secret="operator-token-1").csrf_token(session))


def test_revoked_session_is_refused() -> None:
    s = signer()
    cookie, session = s.issue()
    s.revoke(session)
    assert s.read(cookie) is None
    fresh, _ = s.issue()
    assert s.read(fresh) is not None


def test_csrf_token_is_bound_to_the_session() -> None:
    s = signer()
    _, one = s.issue()
    _, two = s.issue()
    token = s.csrf_token(one)
    assert s.csrf_valid(one, token)
    assert not s.csrf_valid(two, token)
    assert not s.csrf_valid(one, None)
    assert not s.csrf_valid(one, "")
    assert not s.csrf_valid(one, token[:-1])
    assert not s.csrf_valid(one, token + "é")


def test_names_are_sanitised_for_the_audit_log() -> None:
    assert clean_name("alice<script>") == "alicescript"
    assert clean_name("x" * 100) == "x" * 64
    assert clean_name(None) == ""
    s = signer()
    cookie, _ = s.issue("bob smith\n")
    read = s.read(cookie)
    assert read is not None and read.name == "bobsmith"


def test_empty_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        SessionSigner("")


def test_login_throttle_blocks_after_the_limit_then_forgets() -> None:
    clock = Clock(0.0)
    t = LoginThrottle(limit=3, window_s=60, clock=clock)
    for _ in range(3):
        assert not t.blocked("10.0.0.1")
        t.failed("10.0.0.1")
    assert t.blocked("10.0.0.1") and not t.blocked("10.0.0.2")
    clock.now = 61
    assert not t.blocked("10.0.0.1")
    t.failed("10.0.0.1")
    t.succeeded("10.0.0.1")
    assert not t.blocked("10.0.0.1")


@pytest.mark.parametrize(("accept", "html"), [
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", True),
    ("application/json", False),
    ("*/*", False),
    (None, False),
    ("", False),
    ("application/json, text/html", False),
    ("text/html;q=0.5, application/json", False),
    ("application/json;q=0.1, text/html", True),
    ("text/html;q=0", False),
    ("text/html;q=abc", False),
])
def test_content_negotiation(accept: str | None, html: bool) -> None:
    assert prefers_html(accept) is html


@pytest.mark.parametrize(("target", "expected"), [
    ("/incidents/inc-1", "/incidents/inc-1"),
    ("/status?x=1", "/status?x=1"),
    ("//evil.example/", "/status"),
    ("https://evil.example/", "/status"),
    ("/\\evil.example", "/status"),
    ("javascript:alert(1)", "/status"),
    ("/status\r\nSet-Cookie: x=1", "/status"),
    ("", "/status"),
    (None, "/status"),
    ("/login?next=/login", "/status"),
    ("/logout", "/status"),
])
def test_login_only_returns_to_local_paths(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected
