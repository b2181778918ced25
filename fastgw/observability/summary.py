"""One finished request as a flat JSON-ready dict: the access log line and webhook record.

Never the key (only its alias); prompts and completions only when the operator opted in
(``litellm_settings.turn_off_message_logging: false``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .metrics import key_alias, record_cost

if TYPE_CHECKING:
    from ..pipeline import Call

_PROMPT_FIELDS = ("messages", "prompt", "input", "system")


def cache_state(call: "Call") -> str | None:
    """"hit" | "miss" when the cache applied to the request, else None."""
    return call.response_headers.get("x-fastgw-cache")


def request_summary(call: "Call", include_messages: bool = False) -> dict[str, Any]:
    record = call.record
    cost = 0.0 if record.cache_hit else record_cost(record)
    summary: dict[str, Any] = {
        "request_id": record.request_id,
        "key_alias": key_alias(call) or None,
        "endpoint": record.endpoint,
        "model": record.model_group,
        "deployment": record.deployment_id,
        "provider": record.provider,
        "upstream_model": record.upstream_model,
        "stream": record.stream,
        "status": record.status,
        "error": record.error_type,
        "latency_ms": round(record.latency_ms, 3),
        "ttft_ms": round(record.ttft_ms, 3) if record.ttft_ms is not None else None,
        "prompt_tokens": record.prompt_tokens,
        "completion_tokens": record.completion_tokens,
        "cost": cost,
        "cache": cache_state(call),
        "cache_hit": record.cache_hit,
        "attempts": record.attempts,
    }
    if include_messages:
        summary["request"] = {k: call.body[k] for k in _PROMPT_FIELDS if k in call.body}
        summary["response"] = call.completion
    return summary
