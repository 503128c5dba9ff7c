"""Settings refuse unsafe configurations with a one-line reason."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sre_agent.config import Settings


def build(**kw: object) -> Settings:
    return Settings(_env_file=None, **kw)  # type: ignore[arg-type]


def test_defaults_are_the_embedded_loopback_approval_setup() -> None:
    s = build()
    assert (s.host, s.port, s.mode.value) == ("127.0.0.1", 8001, "approval")
    assert s.database_url == "sqlite:///data/sre-agent.db"
    assert s.max_body_bytes == 10 * 1024 * 1024
    assert not s.llm.enabled


@pytest.mark.parametrize("host", ["0.0.0.0", "10.1.2.3", "::", "agent.example.com"])
def test_public_bind_without_tokens_is_refused(host: str) -> None:
    with pytest.raises(ValidationError, match="non-loopback"):
        build(host=host)
    with pytest.raises(ValidationError, match="non-loopback"):
        build(host=host, webhook_token="a-real-token-1")  # operator token still missing


def test_public_bind_with_both_tokens_is_allowed() -> None:
    s = build(host="0.0.0.0", webhook_token="a-real-token-1", operator_token="another-one-2")
    assert s.host == "0.0.0.0"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_tokens(host: str) -> None:
    assert build(host=host).host == host


@pytest.mark.parametrize("value", ["changeme", "CHANGEME", "secret", "short"])
def test_placeholder_secrets_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        build(operator_token=value)


def test_basic_auth_needs_both_halves() -> None:
    with pytest.raises(ValidationError, match="USERNAME"):
        build(webhook_username="am")


def test_secrets_are_not_in_repr() -> None:
    s = build(operator_token="super-secret-value-1")
    assert "super-secret-value-1" not in repr(s) and "super-secret-value-1" not in str(
        s.model_dump())


def test_nested_llm_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRE_AGENT_LLM__API_KEY", "sk-local-123")
    monkeypatch.setenv("SRE_AGENT_LLM__TIMEOUT_S", "2.5")
    s = build()
    assert s.llm.enabled and s.llm.timeout_s == 2.5


# --- the LLM's settings -----------------------------------------------------------------------


def test_base_url_alone_enables_the_llm_with_a_placeholder_key(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRE_AGENT_LLM__BASE_URL", "http://127.0.0.1:11434/v1")
    s = build()
    assert s.llm.enabled and s.llm.api_key is None
    assert s.llm.effective_api_key.get_secret_value() == "sk-no-key-required"


def test_no_key_and_no_url_is_rules_only() -> None:
    s = build()
    assert not s.llm.enabled


@pytest.mark.parametrize("value", ["changeme", "CHANGEME", " secret ", "token", "sk-1"])
def test_placeholder_llm_keys_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SRE_AGENT_LLM__API_KEY", value)
    with pytest.raises(ValidationError, match="SRE_AGENT_LLM__API_KEY is a placeholder") as err:
        build()
    assert value.strip() not in str(err.value).replace("SRE_AGENT_LLM__API_KEY", "")


def test_an_empty_llm_key_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SRE_AGENT_LLM__API_KEY", "")
    assert build().llm.api_key is None


def test_bounded_deterministic_defaults() -> None:
    llm = build().llm
    assert llm.max_output_tokens == 512 and llm.temperature == 0.0 and llm.seed is None


@pytest.mark.parametrize(("base_url", "mode", "tools", "expected"), [
    (None, "auto", 6, "native"),
    ("http://127.0.0.1:8080/v1", "auto", 6, "prompted"),
    ("http://127.0.0.1:8080/v1", "native", 6, "native"),
    (None, "prompted", 6, "prompted"),
    (None, "auto", 0, "off"),
    (None, "off", 6, "off"),
])
def test_investigation_mode(base_url: str | None, mode: str, tools: int, expected: str) -> None:
    from sre_agent.config import LLMSettings

    s = LLMSettings(base_url=base_url, investigation=mode, max_tool_calls=tools)  # type: ignore[arg-type]
    assert s.investigation_mode.value == expected
