"""Anthropic error bodies (HTTP and in-stream) -> GatewayError.

Anthropic's envelope is ``{"type":"error","error":{"type":...,"message":...}}``. The
router only reads ``code``/``retryable``, so the Anthropic-specific signals are mapped
here: "prompt is too long" -> ``context_length_exceeded``, 529 -> ``overloaded``, a
spend-limit 429 -> ``insufficient_quota`` (not retryable), ``x-should-retry`` honoured.
"""
from __future__ import annotations

from typing import Mapping

import orjson

from ...errors import GatewayError
from ..common import CONTEXT_LENGTH, OVERLOADED, QUOTA, make_error

PROVIDER = "anthropic"

# Error type -> the HTTP status Anthropic uses for it; needed for in-stream ``error`` events,
# which carry a type but no status.
TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "conflict_error": 409,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}

_CONTEXT_MARKERS = ("prompt is too long", "exceed context limit", "context window", "too many total text bytes")


def _parse(data: bytes) -> dict | None:
    try:
        body = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return None
    return body if isinstance(body, dict) else None


def error_from_object(status: int, error: object, headers: Mapping[str, str] | None = None) -> GatewayError:
    """Map an Anthropic ``error`` object (the inner dict) with a known status."""
    message = f"upstream returned HTTP {status}"
    etype: str | None = None
    details: object = None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        etype = error.get("type") if isinstance(error.get("type"), str) else None
        details = error.get("details")
    elif isinstance(error, str):
        message = error
    code: str | None = None
    lowered = message.lower()
    if status in (400, 413) and any(marker in lowered for marker in _CONTEXT_MARKERS):
        code = CONTEXT_LENGTH
    elif status == 413:
        code = "request_too_large"
    elif status == 429 and isinstance(details, dict) and details.get("error_code") == "enforced_spend_limit_reached":
        code = QUOTA
    elif status == 529 or etype == "overloaded_error":
        code = OVERLOADED
    err = make_error(status, message, type=etype, code=code, headers=headers, provider=PROVIDER)
    should_retry = (headers or {}).get("x-should-retry")
    if should_retry == "true" and code != QUOTA:
        err.retryable = True
    elif should_retry == "false":
        err.retryable = False
    return err


def anthropic_error(status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
    """An upstream non-2xx response. Non-JSON bodies (Cloudflare pages) classify by status."""
    lowered = {k.lower(): v for k, v in headers.items()}
    body = _parse(data)
    error = body.get("error") if body else None
    if error is None and body and isinstance(body.get("message"), str):
        error = {"message": body["message"]}
    return error_from_object(status, error, lowered)


def stream_error(payload: object) -> GatewayError:
    """An in-band ``event: error`` after the 200: status comes from the error type."""
    error = payload.get("error") if isinstance(payload, dict) else None
    etype = error.get("type") if isinstance(error, dict) else None
    status = TYPE_STATUS.get(etype or "", 500)
    return error_from_object(status, error or {"message": "upstream stream error"})
