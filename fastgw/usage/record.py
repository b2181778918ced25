"""One row of the usage log: everything needed to account for one upstream call."""
from __future__ import annotations

import msgspec


class UsageRecord(msgspec.Struct, kw_only=True):
    ts: float  # unix time the request arrived
    request_id: str
    endpoint: str  # chat.completions | completions | embeddings | messages
    key_hash: str | None = None
    model_group: str | None = None
    deployment_id: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    status: int = 0  # HTTP status the client saw (0 while unknown)
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    cache_creation_tokens: int = 0
    reasoning_tokens: int = 0
    stream: bool = False
    error_type: str | None = None  # error code, or "client_disconnected"
    attempts: int = 0  # upstream attempts of the request; on a ``retried`` row, that attempt's ordinal
    retried: bool = False  # an attempt that failed and was followed by another (not the client's outcome)
    fallback: str | None = None  # the fallback model group that served (or last tried), if one was taken
    # Governance (issue 5): who the request was billed to and what it cost (USD). ``cost`` is
    # None exactly when the deployment has no price (``unpriced``): never a silent $0.
    key_alias: str | None = None
    team_id: str | None = None
    user_id: str | None = None
    cost: float | None = None
    input_cost: float | None = None
    output_cost: float | None = None
    cache_read_cost: float | None = None
    cache_creation_cost: float | None = None
    unpriced: bool = False
    cache_hit: bool = False  # answered from the response cache (issue 6): no upstream call, cost 0

    def set_usage(self, usage: dict | None) -> None:
        """Take an OpenAI-shaped usage object (as normalised by the providers)."""
        if not usage:
            return
        self.prompt_tokens = int(usage.get("prompt_tokens") or usage.get("input_tokens") or 0)
        self.completion_tokens = int(usage.get("completion_tokens") or usage.get("output_tokens") or 0)
        prompt_details = usage.get("prompt_tokens_details") or {}
        completion_details = usage.get("completion_tokens_details") or {}
        self.cached_tokens = int(prompt_details.get("cached_tokens") or usage.get("cache_read_input_tokens")
                                 or usage.get("prompt_cache_hit_tokens") or 0)  # the last: DeepSeek's name
        self.cache_creation_tokens = int(
            usage.get("cache_creation_input_tokens") or prompt_details.get("cache_write_tokens") or 0
        )
        self.reasoning_tokens = int(completion_details.get("reasoning_tokens") or 0)


COLUMNS: tuple[str, ...] = UsageRecord.__struct_fields__
