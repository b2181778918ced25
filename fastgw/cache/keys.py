"""Cache keys: one request's answer-determining content, canonicalised and hashed.

Two requests share a key exactly when the upstream would be asked the same question:
same endpoint, same model group, same parameters. Fields that only change how the
answer is delivered (streaming), who asked (``user``, key, request ids) or how the
gateway routes it are left out, so a streamed and a non-streamed request share an entry.
"""
from __future__ import annotations

import hashlib
from typing import Any

import orjson

# Body fields that do not change the answer. ``cache`` is the per-request cache control.
IGNORED_FIELDS = frozenset({
    "model", "stream", "stream_options", "user", "cache", "metadata", "request_id", "litellm_call_id",
    "litellm_metadata", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "num_retries",
    "timeout", "stream_timeout", "mock_testing_fallbacks",
})


def _canonical(value: Any) -> Any:
    """JSON ``1.0`` and ``1`` are the same number; make them hash the same."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def canonical_request(endpoint: str, model_group: str, body: dict) -> bytes:
    """Canonical JSON (sorted keys) of what determines the answer."""
    params = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    document = {"endpoint": endpoint, "model_group": model_group, "params": _canonical(params)}
    return orjson.dumps(document, option=orjson.OPT_SORT_KEYS)


def cache_key(namespace: str, endpoint: str, model_group: str, body: dict) -> str:
    """``<namespace>:<sha256 hex>``; the namespace prefix lets operators scan or purge one namespace."""
    digest = hashlib.sha256(canonical_request(endpoint, model_group, body)).hexdigest()
    return f"{namespace}:{digest}"
