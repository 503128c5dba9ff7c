"""Secrets vanish from log text; ordinary lines survive byte for byte."""

from __future__ import annotations

import pytest

from sre_agent.shared.redact import MASK, redact

JWT = ("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
       "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")
PEM = ("-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7x2n\nq1w2e3r4t5y6\n"
       "-----END RSA PRIVATE KEY-----")

# (line, secret that must be gone, text that must remain)
SECRET_CASES = [
    ("password=hunter2", "hunter2", "password="),
    ("db connect user=app password=hunter2 host=db", "hunter2", "host=db"),
    ("DB_PASSWORD=s3cr3t-value", "s3cr3t-value", "DB_PASSWORD="),
    ("passwd: hunter2", "hunter2", "passwd:"),
    ('{"user": "bob", "password": "hunter2"}', "hunter2", '"password": "'),
    ("{'password': 'hunter2', 'x': 1}", "hunter2", "'x': 1"),
    ("secret=abc123", "abc123", "secret="),
    ("client_secret: zyx987", "zyx987", "client_secret:"),
    ("token=deadbeef", "deadbeef", "token="),
    ("GITHUB_TOKEN=ghp_abcdefghijklmnop", "ghp_abcdefghijklmnop", "GITHUB_TOKEN="),
    ("calling /api?api_key=k-123&page=2", "k-123", "&page=2"),
    ("apikey=k-123", "k-123", "apikey="),
    ("x-api-key: k-123", "k-123", "x-api-key:"),
    ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "wJalrXUtnFEMI", "aws_secret_access_key"),
    ("Authorization: Bearer abc.def.ghi", "abc.def.ghi", "Authorization:"),
    ("authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz", "authorization:"),
    ("headers={'Authorization': 'Basic dXNlcjpwYXNz', 'Host': 'a'}", "dXNlcjpwYXNz", "'Host'"),
    ("sending request with bearer 0123456789abcdef", "0123456789abcdef", "sending request"),
    ("found key AKIAIOSFODNN7EXAMPLE in env", "AKIAIOSFODNN7EXAMPLE", "in env"),
    ("connecting to postgres://app:hunter2@db:5432/app", "hunter2", "@db:5432/app"),
    ("fetch https://user:p%40ss@example.com/x failed", "p%40ss", "example.com/x failed"),
    (f"session {JWT} accepted", JWT, "accepted"),
    (f"before\n{PEM}\nafter", "MIIEowIBAAKCAQEA7x2n", "after"),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkq", "MIIEvQIBADANBgkq", ""),
    ("signing key 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b", "9f86d081884c7d659a2feaa0", "key"),
    ("hmac: c2VjcmV0LXNpZ25pbmcta2V5LTEyMzQ1Njc4OTA=", "c2VjcmV0LXNpZ25pbmcta2V5", "hmac:"),
]

HARMLESS = [
    "GET /api/v1/users 200 12ms",
    "hello",
    "user login failed: invalid password",
    "password reset requested for user 42",
    "token expired for session 42, refreshing",
    "rotating secret in 5 minutes",
    "max_tokens=100 temperature=0.2",
    "token_count=5",
    "cat: /etc/passwd: permission denied",
    "connecting to postgres://db:5432/app",
    "commit 3f9a2b1c0d4e5f60718293a4b5c6d7e8f9012345 deployed",
    "trace_id=4bf92f3577b34da6a3ce929d0e0e4736 span_id=00f067aa0ba902b7",
    "cache key=users:42 hit",
    "level=info msg=\"health check ok\" duration=3ms",
    "image sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    "2026-11-21T20:21:48Z WARN disk usage 91% on /var/lib/docker",
    "Traceback (most recent call last):",
    "",
]


@pytest.mark.parametrize(("line", "secret", "kept"), SECRET_CASES)
def test_secrets_are_removed(line: str, secret: str, kept: str) -> None:
    out = redact(line)
    assert secret not in out, out
    assert MASK in out
    assert kept in out


@pytest.mark.parametrize("line", HARMLESS)
def test_harmless_lines_survive_unchanged(line: str) -> None:
    assert redact(line) == line


@pytest.mark.parametrize(("line", "_secret", "_kept"), SECRET_CASES)
def test_redaction_is_idempotent(line: str, _secret: str, _kept: str) -> None:
    once = redact(line)
    assert redact(once) == once


def test_quoted_values_keep_their_quotes() -> None:
    assert redact('{"password": "hunter2"}') == '{"password": "[REDACTED]"}'


def test_url_keeps_user_and_host() -> None:
    assert redact("redis://cache:pw@redis:6379/0") == "redis://cache:[REDACTED]@redis:6379/0"


def test_multiline_log_keeps_other_lines() -> None:
    text = "starting\npassword=hunter2\nready on :8080"
    assert redact(text) == "starting\npassword=[REDACTED]\nready on :8080"
