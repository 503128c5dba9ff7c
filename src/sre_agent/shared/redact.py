"""Remove secrets from text (container logs, probe bodies, error messages) before it is stored.

The rules are deliberately conservative about what counts as a secret value (it must follow a
key-like word and a separator, or have an unmistakable shape such as a JWT or an AWS key id), so
ordinary log lines that merely mention "password" or "token" survive unchanged.
"""

from __future__ import annotations

import re
from collections.abc import Callable

MASK = "[REDACTED]"

# Key names whose value is a secret: db_password=..., "apiKey": "...", GITHUB_TOKEN=..., etc.
_SENSITIVE_KEYS = (
    r"(?:password|passwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|credentials?|auth[_-]?key)"
)

_RULES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    # PEM private key blocks (whole block; an unterminated block is masked to the end).
    (re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END[A-Z0-9 ]*PRIVATE KEY-----|\Z)",
                re.DOTALL), MASK),
    # Authorization / Proxy-Authorization headers, in plain, JSON or repr form: whole value.
    (re.compile(r"(?i)\b((?:proxy-)?authorization)([\"']?\s*[:=]\s*[\"']?)[^\"'\r\n]+"),
     rf"\1\2{MASK}"),
    # Bearer tokens anywhere.
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9\-._~+/]+=*"), rf"\1 {MASK}"),
    # Credentials inside URLs: scheme://user:pass@host -> scheme://user:[REDACTED]@host.
    (re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)([^/\s:@]*):([^/\s@]+)@"), rf"\1\2:{MASK}@"),
    # JSON Web Tokens.
    (re.compile(r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"), MASK),
    # Slack tokens (bot, user, app, config, refresh).
    (re.compile(r"\bxox[a-z]-[A-Za-z0-9\-]{8,}"), MASK),
    # AWS access key ids.
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA)[0-9A-Z]{16}\b"), MASK),
    # key=value / key: value / "key": "value" where the key names a secret.
    (re.compile(
        r"(?i)(?<![\w./\-])([\w.\-]*" + _SENSITIVE_KEYS + r")"
        r"([\"']?\s*[:=]\s*)"
        r"(?!\[REDACTED\])(\"[^\"\r\n]*\"|'[^'\r\n]*'|[^\s,;&\"'}\])]+)"),
     lambda m: f"{m.group(1)}{m.group(2)}{_quoted_mask(m.group(3))}"),
    # Long hex/base64 strings right after a key-like word: "signing key 9f86d081884c7d65...".
    (re.compile(
        r"(?i)\b((?:key|secret|token|signature|hmac|credential|passphrase|salt)\w*\s*"
        r"(?:[:=]|\bis\b)?\s*)"
        r"(?=[A-Za-z0-9+/_\-]*\d)(?=[A-Za-z0-9+/_\-]*[A-Za-z])[A-Za-z0-9+/_\-]{24,}={0,2}"),
     rf"\1{MASK}"),
]


def _quoted_mask(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return f"{value[0]}{MASK}{value[0]}"
    return MASK


def redact(text: str) -> str:
    """Return ``text`` with secrets replaced by ``[REDACTED]``; other text is left unchanged."""
    if not text:
        return text
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text
