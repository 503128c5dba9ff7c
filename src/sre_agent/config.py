"""All configuration, from the environment (prefix ``SRE_AGENT_``, nested delimiter ``__``)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from sre_agent.domain.incident import Mode

PLACEHOLDER_SECRETS = frozenset({
    "changeme", "change-me", "change_me", "secret", "password", "token", "example",
    "placeholder", "xxx", "todo", "default", "admin",
})


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class StructuredOutputMethod(StrEnum):
    JSON_SCHEMA = "json_schema"
    FUNCTION_CALLING = "function_calling"
    JSON_MODE = "json_mode"


class LLMSettings(BaseModel):
    api_key: SecretStr | None = None
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_retries: int = Field(default=1, ge=0, le=10)
    structured_output_method: StructuredOutputMethod = StructuredOutputMethod.JSON_SCHEMA
    max_tool_calls: int = Field(default=6, ge=0, le=50)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=300.0, ge=0)
    calls_per_minute: int = Field(default=30, ge=1)
    max_tokens_per_incident: int = Field(default=20000, ge=100)

    @property
    def enabled(self) -> bool:
        return self.api_key is not None and bool(self.api_key.get_secret_value())


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SRE_AGENT_", env_nested_delimiter="__", env_file=".env",
        env_file_encoding="utf-8", extra="ignore",
    )

    host: str = "127.0.0.1"
    port: int = Field(default=8001, ge=0, le=65535)
    database_url: str = "sqlite:///data/sre-agent.db"
    webhook_token: SecretStr | None = None
    webhook_username: str | None = None
    webhook_password: SecretStr | None = None
    operator_token: SecretStr | None = None
    mode: Mode = Mode.APPROVAL
    max_body_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    log_format: LogFormat = LogFormat.JSON
    log_level: str = "INFO"
    workers: int = Field(default=2, ge=1, le=64)
    stage_timeout_s: float = Field(default=60.0, gt=0)

    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    notify_url: str | None = None
    runbooks_dir: str | None = None
    evidence_timeout_s: float = Field(default=5.0, gt=0, le=120)
    log_tail_lines: int = Field(default=50, ge=0, le=2000)
    llm: LLMSettings = Field(default_factory=LLMSettings)

    @property
    def webhook_auth_configured(self) -> bool:
        return self.webhook_token is not None or (
            self.webhook_username is not None and self.webhook_password is not None)

    @model_validator(mode="after")
    def _refuse_unsafe(self) -> Self:
        for name in ("webhook_token", "webhook_password", "operator_token"):
            value: SecretStr | None = getattr(self, name)
            if value is not None:
                raw = value.get_secret_value()
                if raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < 8:
                    raise ValueError(
                        f"SRE_AGENT_{name.upper()} is a placeholder or shorter than 8 "
                        "characters; set a real secret")
        if (self.webhook_username is None) != (self.webhook_password is None):
            raise ValueError("set both SRE_AGENT_WEBHOOK_USERNAME and "
                             "SRE_AGENT_WEBHOOK_PASSWORD, or neither")
        if not is_loopback(self.host) and not (
                self.webhook_auth_configured and self.operator_token is not None):
            raise ValueError(
                f"refusing to listen on non-loopback address {self.host}: set "
                "SRE_AGENT_WEBHOOK_TOKEN (or username/password) and SRE_AGENT_OPERATOR_TOKEN")
        return self
