"""All configuration, from the environment (prefix ``SRE_AGENT_``, nested delimiter ``__``)."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from sre_agent.domain.diagnosis import ActionKind
from sre_agent.domain.incident import Mode
from sre_agent.domain.policy import Policy
from sre_agent.domain.routing import Destination, Routes, RoutesError, parse_routes

PLACEHOLDER_SECRETS = frozenset({
    "changeme", "change-me", "change_me", "secret", "password", "token", "example",
    "placeholder", "xxx", "todo", "default", "admin",
})


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class WebhookAck(StrEnum):
    """When the webhook answers (README "When the webhook answers")."""

    CORRELATED = "correlated"  # 200 once correlated and hash-chained; names the incidents
    QUEUED = "queued"  # 202 once the raw notification is durable in the inbox


class Role(StrEnum):
    """What one ``sre-agent serve`` process does (see README "Running several replicas")."""

    ALL = "all"  # ingest, operators and the pipeline: the one-process default
    API = "api"  # ingest webhooks and serve operators; runs no pipeline stage
    WORKER = "worker"  # run the pipeline, finding work in the store; serves health only


class StructuredOutputMethod(StrEnum):
    JSON_SCHEMA = "json_schema"
    FUNCTION_CALLING = "function_calling"
    JSON_MODE = "json_mode"


class Investigation(StrEnum):
    """How the model may call the read-only tools before it answers."""

    AUTO = "auto"  # native for api.openai.com (no base_url), prompted for any other server
    NATIVE = "native"  # the API's tool calls (bind_tools)
    PROMPTED = "prompted"  # a small JSON protocol inside the answer (models without tool calls)
    OFF = "off"


# Sent to a server configured by BASE_URL alone: local servers (llama.cpp, Ollama) need no key,
# but the OpenAI client insists on one.
LOCAL_PLACEHOLDER_KEY = "sk-no-key-required"


class LLMSettings(BaseModel):
    model_config = ConfigDict(hide_input_in_errors=True)  # errors never echo the key

    api_key: SecretStr | None = None
    base_url: str | None = None
    model: str = "gpt-4o-mini"
    timeout_s: float = Field(default=30.0, gt=0, le=600)
    max_retries: int = Field(default=1, ge=0, le=10)
    structured_output_method: StructuredOutputMethod = StructuredOutputMethod.JSON_SCHEMA
    # Each tool round re-sends the whole prompt (~1.1k tokens on the local model): 2 keeps an
    # investigated incident near 3.6k tokens (docs/benchmarks.md measured these defaults).
    max_tool_calls: int = Field(default=2, ge=0, le=50)
    max_output_tokens: int = Field(default=512, ge=16, le=32768)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed: int | None = Field(default=None, ge=0)
    investigation: Investigation = Investigation.AUTO
    combine_with_rules: bool = True
    explain_after_acting: bool = True  # act on a decisive runbook at once, the LLM explains
    prime_prompt_cache: bool | None = None  # None = auto: on when BASE_URL is set
    breaker_failures: int = Field(default=3, ge=1)
    breaker_cooldown_s: float = Field(default=300.0, ge=0)
    calls_per_minute: int = Field(default=30, ge=1)
    max_tokens_per_incident: int = Field(default=20000, ge=100)

    @field_validator("api_key")
    @classmethod
    def _empty_key(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @model_validator(mode="after")
    def _refuse_placeholder_key(self) -> Self:
        # After validation, so that the error's input is the model (key masked), not the key.
        if self.api_key is not None:
            raw = self.api_key.get_secret_value().strip()
            if raw.lower() in PLACEHOLDER_SECRETS or len(raw) < 8:
                raise ValueError(
                    "SRE_AGENT_LLM__API_KEY is a placeholder or shorter than 8 characters; set "
                    "a real key, or leave it unset for a local server (BASE_URL alone is "
                    "enough)")
        return self

    @field_validator("base_url")
    @classmethod
    def _empty_base_url(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @property
    def enabled(self) -> bool:
        """An API key or a base URL (a local server needs no key) turns the LLM on."""
        return self.api_key is not None or self.base_url is not None

    @property
    def effective_api_key(self) -> SecretStr:
        """The key to send: the configured one, else a placeholder for a keyless local server."""
        return self.api_key if self.api_key is not None else SecretStr(LOCAL_PLACEHOLDER_KEY)

    @property
    def primes_prompt_cache(self) -> bool:
        """Re-state the static system prompt before each analysis (see ``analysis/llm.py``):
        a local server's prompt cache then never changes the answer. Auto: with a base URL."""
        if self.prime_prompt_cache is None:
            return self.base_url is not None
        return self.prime_prompt_cache

    @property
    def investigation_mode(self) -> Investigation:
        """``auto`` resolved: native tool calls on OpenAI itself, the prompted protocol on other
        servers (small local models write tool calls as text), nothing with no tool budget."""
        if self.max_tool_calls == 0:
            return Investigation.OFF
        if self.investigation is Investigation.AUTO:
            return Investigation.NATIVE if self.base_url is None else Investigation.PROMPTED
        return self.investigation


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
        env_file_encoding="utf-8", extra="ignore", hide_input_in_errors=True,
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
    stage_timeout_s: float = Field(default=300.0, gt=0)
    # How often the runner looks for incidents whose log moved past what was processed and that
    # nothing is working on (runs given up during a store outage, work of a stopped process).
    resume_sweep_s: float = Field(default=30.0, gt=0, le=3600)
    # With PostgreSQL, incident work is leased so that replicas never run one incident at once;
    # a dead replica's leases run out after this and another replica takes its incidents over
    # (failover ~= this; 10 s: benchmarks/failover.py and docs/reliability.md say why).
    lease_ttl_s: float = Field(default=10.0, ge=2, le=3600)
    # all | api | worker; anything but all needs PostgreSQL (replicas share work through it).
    role: Role = Role.ALL
    # A worker (and an ``all`` replica on PostgreSQL) looks for work in the store this often.
    worker_poll_s: float = Field(default=0.5, gt=0, le=60)
    # Every serve process records itself in the ``replicas`` table this often; one silent for
    # three periods is shown as stale on /status.
    heartbeat_s: float = Field(default=5.0, gt=0, le=300)
    # The server freezes what start-up made (modules, app, settings: kept for the process's
    # life) out of the garbage collector's walks and collects the young generation after this
    # many allocations (CPython: 700). 0: CPython's defaults. benchmarks/storm.py measured it.
    gc_gen0_threshold: int = Field(default=50_000, ge=0, le=10_000_000)
    # How long a thread may hold the GIL while another waits for it (CPython: 0.005 s). The
    # event loop shares the GIL with the store's writer thread; a shorter interval gives it
    # back to the loop sooner while the writer encodes a large batch. 0: CPython's default.
    switch_interval_s: float = Field(default=0.001, ge=0, le=0.1)
    # Ingest before analysis (ingest_first.py): in one process, each store call of the
    # pipeline waits while webhooks are in flight, at most this long (0: never waits).
    ingest_first_max_defer_s: float = Field(default=0.05, ge=0, le=5)
    # correlated: answer 200 once the alerts are correlated into incidents and hash-chained
    # (the answer names them); queued: answer 202 once the raw notification is durable in the
    # inbox, and correlate right after, in a process running the pipeline (pipeline/inbox.py).
    webhook_ack: WebhookAck = WebhookAck.CORRELATED

    prometheus_url: str | None = None
    alertmanager_url: str | None = None
    notify_url: str | None = None
    runbooks_dir: str | None = None
    evidence_timeout_s: float = Field(default=5.0, gt=0, le=120)
    # Target resolution reuses Docker's container list for this long (0: list per incident).
    # Only the label -> container mapping is reused, and a label that the reused list cannot
    # resolve is listed again.
    docker_list_cache_s: float = Field(default=1.0, ge=0, le=60)
    # Incidents analysed within this many seconds of each other share one read of a
    # container's state and logs, a health URL, a PromQL query (evidence/recent.py); a shared
    # answer records its age (cached_age_s). Failures are never shared. 0: each reads its own.
    evidence_cache_s: float = Field(default=1.0, ge=0, le=60)
    log_tail_lines: int = Field(default=50, ge=0, le=2000)
    llm: LLMSettings = Field(default_factory=LLMSettings)

    # --- safety policy (see domain/policy.py for the order of checks) -------------------------
    action_allowlist: Annotated[list[ActionKind], NoDecode] = Field(
        default_factory=lambda: list(ActionKind))
    scope_label: str = Field(default="sre-agent.managed=true", pattern=r"^[^=\s]+=[^\s]*$")
    cooldown_s: float = Field(default=300.0, ge=0)
    max_actions_per_hour: int = Field(default=20, ge=0)
    max_actions_per_target_per_hour: int = Field(default=3, ge=0)
    min_confidence_autonomous: float = Field(default=0.6, ge=0, le=1)
    require_agreement: bool = False
    breaker_failures: int = Field(default=3, ge=1)
    breaker_window_s: float = Field(default=3600.0, gt=0)
    approval_ttl_s: float = Field(default=3600.0, gt=0)
    verify_deadline_s: float = Field(default=60.0, gt=0)
    verify_stable_s: float = Field(default=30.0, ge=0, le=3600)
    max_attempts: int = Field(default=1, ge=1, le=5)
    min_attempts_for_stats: int = Field(default=3, ge=1)
    min_success_rate: float = Field(default=0.5, ge=0, le=1)
    action_timeout_s: float = Field(default=30.0, gt=0)
    docker_stop_timeout_s: int = Field(default=5, ge=0, le=300)
    silence_duration_s: int = Field(default=3600, ge=60, le=86400)

    # --- chat and paging (README "Chat and paging"; integrations/, pipeline/delivery.py) ------
    public_url: str | None = None  # the dashboard as people reach it, for links in messages
    slack_bot_token: SecretStr | None = None
    slack_channel: str | None = None
    slack_webhook_url: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_approvers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    slack_api_url: str = "https://slack.com/api"
    teams_webhook_url: SecretStr | None = None
    pagerduty_routing_key: SecretStr | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com"
    routes: str | None = None
    delivery_poll_s: float = Field(default=1.0, gt=0, le=60)
    delivery_max_attempts: int = Field(default=5, ge=1, le=20)
    delivery_backoff_s: float = Field(default=1.0, ge=0, le=300)
    delivery_timeout_s: float = Field(default=10.0, gt=0, le=120)

    @field_validator("action_allowlist", mode="before")
    @classmethod
    def _split_allowlist(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("slack_approvers", mode="before")
    @classmethod
    def _split_approvers(cls, value: object) -> object:
        if isinstance(value, str):
            return [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("slack_bot_token", "slack_webhook_url", "slack_signing_secret",
                     "teams_webhook_url", "pagerduty_routing_key")
    @classmethod
    def _empty_secret(cls, value: SecretStr | None) -> SecretStr | None:
        return value if value is not None and value.get_secret_value().strip() else None

    @field_validator("slack_channel", "routes", "public_url")
    @classmethod
    def _empty_text(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @property
    def configured_destinations(self) -> frozenset[Destination]:
        found = set()
        if self.slack_bot_token is not None or self.slack_webhook_url is not None:
            found.add(Destination.SLACK)
        if self.teams_webhook_url is not None:
            found.add(Destination.TEAMS)
        if self.pagerduty_routing_key is not None:
            found.add(Destination.PAGERDUTY)
        return frozenset(found)

    def routing(self) -> Routes:
        """The parsed ``SRE_AGENT_ROUTES``; unset: every configured destination, always."""
        if self.routes is None:
            return Routes.everything(self.configured_destinations)
        return parse_routes(self.routes)

    @property
    def dashboard_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def policy(self) -> Policy:
        return Policy(
            allowlist=frozenset(self.action_allowlist), scope_label=self.scope_label,
            cooldown_s=self.cooldown_s, max_actions_per_hour=self.max_actions_per_hour,
            max_actions_per_target_per_hour=self.max_actions_per_target_per_hour,
            min_confidence_autonomous=self.min_confidence_autonomous,
            require_agreement=self.require_agreement, breaker_failures=self.breaker_failures,
            breaker_window_s=self.breaker_window_s, approval_ttl_s=self.approval_ttl_s,
            verify_deadline_s=self.verify_deadline_s, verify_stable_s=self.verify_stable_s,
            max_attempts=self.max_attempts,
            min_attempts_for_stats=self.min_attempts_for_stats,
            min_success_rate=self.min_success_rate)

    @property
    def on_postgresql(self) -> bool:
        return self.database_url.startswith("postgresql")

    def role_error(self) -> str | None:
        """Why this role cannot run on this store, or None: roles split the work between
        processes through the database, which only PostgreSQL shares between them."""
        if self.role is Role.ALL or self.on_postgresql:
            return None
        return (f"--role {self.role.value} needs PostgreSQL (SRE_AGENT_DATABASE_URL="
                "postgresql+psycopg://...); with SQLite only --role all runs")

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
        self._check_chat()
        if (self.webhook_username is None) != (self.webhook_password is None):
            raise ValueError("set both SRE_AGENT_WEBHOOK_USERNAME and "
                             "SRE_AGENT_WEBHOOK_PASSWORD, or neither")
        if not is_loopback(self.host) and not (
                self.webhook_auth_configured and self.operator_token is not None):
            raise ValueError(
                f"refusing to listen on non-loopback address {self.host}: set "
                "SRE_AGENT_WEBHOOK_TOKEN (or username/password) and SRE_AGENT_OPERATOR_TOKEN")
        return self

    def _check_chat(self) -> None:
        if self.slack_bot_token is not None:
            token = self.slack_bot_token.get_secret_value().strip()
            if not token.startswith("xox"):
                raise ValueError("SRE_AGENT_SLACK_BOT_TOKEN must be a Slack bot token "
                                 "(xoxb-...)")
            if self.slack_channel is None:
                raise ValueError("SRE_AGENT_SLACK_BOT_TOKEN needs SRE_AGENT_SLACK_CHANNEL "
                                 "(a channel id such as C0123ABCD)")
        if self.slack_signing_secret is not None:
            raw = self.slack_signing_secret.get_secret_value()
            if raw.strip().lower() in PLACEHOLDER_SECRETS or len(raw) < 8:
                raise ValueError("SRE_AGENT_SLACK_SIGNING_SECRET is a placeholder or shorter "
                                 "than 8 characters")
            if self.slack_bot_token is None:
                raise ValueError("SRE_AGENT_SLACK_SIGNING_SECRET (the approval buttons) needs "
                                 "SRE_AGENT_SLACK_BOT_TOKEN and SRE_AGENT_SLACK_CHANNEL")
        for name in ("slack_webhook_url", "teams_webhook_url"):
            value: SecretStr | None = getattr(self, name)
            if value is not None and urlsplit(value.get_secret_value()).scheme not in (
                    "http", "https"):
                raise ValueError(f"SRE_AGENT_{name.upper()} must be an http(s) URL")
        for name in ("slack_api_url", "pagerduty_events_url", "public_url"):
            url = getattr(self, name)
            if url is not None and urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"SRE_AGENT_{name.upper()} must be an http(s) URL")
        try:
            routes = self.routing()
        except RoutesError as exc:
            raise ValueError(f"SRE_AGENT_ROUTES: {exc}") from None
        missing = sorted(routes.named - self.configured_destinations)
        if missing:
            raise ValueError(f"SRE_AGENT_ROUTES sends to {', '.join(missing)}, which is not "
                             "configured (set its token, webhook URL or routing key)")
