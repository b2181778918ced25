"""LiteLLM's proxy config.yaml, typed.

Field names follow LiteLLM so a user's existing config loads unchanged. Unknown keys
inside ``litellm_params`` are extra parameters for the provider; unknown top-level
settings are kept and reported once at start-up.
"""
from __future__ import annotations

from typing import Any

import msgspec


class LitellmParams(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    model: str
    api_base: str | None = None
    api_key: str | None = None
    api_version: str | None = None
    organization: str | None = None
    timeout: float | None = None
    stream_timeout: float | None = None
    max_retries: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    weight: float | None = None
    max_tokens: int | None = None
    drop_params: bool | None = None
    # provider-specific credentials and locations
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_session_token: str | None = None
    aws_region_name: str | None = None
    aws_bedrock_runtime_endpoint: str | None = None
    vertex_project: str | None = None
    vertex_location: str | None = None
    vertex_credentials: str | None = None
    # built-in mock provider
    mock_response: str | None = None
    mock_chunk_delay_ms: float | None = None
    mock_chunks: int | None = None


class ModelInfo(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    id: str | None = None
    mode: str | None = None
    input_cost_per_token: float | None = None
    output_cost_per_token: float | None = None
    cache_read_input_token_cost: float | None = None
    cache_creation_input_token_cost: float | None = None
    output_cost_per_reasoning_token: float | None = None
    max_tokens: int | None = None
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    base_model: str | None = None


class ModelEntry(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    model_name: str
    litellm_params: LitellmParams
    model_info: ModelInfo = msgspec.field(default_factory=ModelInfo)


class GeneralSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    master_key: str | None = None
    database_url: str | None = None
    max_request_size_mb: float = 32.0
    usage_log_queue_size: int = 100_000
    usage_log_batch_size: int = 500
    usage_log_flush_interval: float = 0.05  # fastgw.usage.log.FLUSH_INTERVAL: why that value
    # LiteLLM's retention settings ("7d", "24h"; fastgw/usage/retention.py); unset: keep every row
    maximum_spend_logs_retention_period: str | None = None
    maximum_spend_logs_retention_interval: str | None = None
    # governance (issue 5): may a key with a budget call a model that has no price? ("deny" | "allow")
    budget_unpriced_models: str = "deny"
    governance_counter_slots: int = 65536  # keys + teams + users one instance can count (a power of two)
    background_health_checks: bool = False
    health_check_interval: float = 300.0
    # observability (fastgw's own names; see fastgw/observability/settings.py)
    log_level: str | None = None
    access_log: bool = True
    webhook_url: str | None = None
    webhook_headers: dict[str, str] = msgspec.field(default_factory=dict)
    webhook_batch_size: int = 100
    webhook_flush_interval: float = 1.0
    webhook_queue_size: int = 10_000
    webhook_max_retries: int = 5


class Config(msgspec.Struct, kw_only=True, forbid_unknown_fields=False):
    model_list: list[ModelEntry] = msgspec.field(default_factory=list)
    general_settings: GeneralSettings = msgspec.field(default_factory=GeneralSettings)
    router_settings: dict[str, Any] = msgspec.field(default_factory=dict)
    litellm_settings: dict[str, Any] = msgspec.field(default_factory=dict)
    environment_variables: dict[str, str] = msgspec.field(default_factory=dict)


class Deployment(msgspec.Struct, kw_only=True):
    """One resolved ``model_list`` entry: what the router picks and a provider serves."""

    id: str
    model_name: str  # the group name clients ask for
    provider: str  # provider name, e.g. "openai", "anthropic", "mock"
    model: str  # the provider's model id (after the "provider/" prefix)
    params: LitellmParams
    info: ModelInfo
    extra: dict[str, Any]  # unknown litellm_params: passed to the provider request body
    drop_params: bool = False

    @property
    def api_base(self) -> str | None:
        return self.params.api_base

    @property
    def api_key(self) -> str | None:
        return self.params.api_key

    def public_dict(self) -> dict[str, Any]:
        """What may be shown to clients and operators: no keys, no secrets."""
        return {
            "id": self.id,
            "model_name": self.model_name,
            "provider": self.provider,
            "model": self.model,
            "api_base": self.params.api_base,
        }
