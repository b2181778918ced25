"""Google API error bodies -> GatewayError (providers.md 4.5 and table 9.3).

Body: ``{"error": {"code", "message", "status", "details": [...]}}``. Specifics:
- a bad API key is a 400 ``INVALID_ARGUMENT`` with ``ErrorInfo.reason == API_KEY_INVALID``;
  it is reported as 401 ``invalid_api_key`` so clients and the router treat it as the
  credential problem it is (fail over, do not retry);
- 429 carries ``RetryInfo.retryDelay`` ("37s") instead of a Retry-After header; it becomes
  one. A per-day quota violation will not clear soon: ``insufficient_quota`` (fail over);
- 503 ``UNAVAILABLE`` is "the model is overloaded";
- context overflow is a 400 whose message says the input token count exceeds the maximum.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

import orjson

from ...errors import GatewayError
from ..common import CONTEXT_LENGTH, OVERLOADED, QUOTA, make_error

_CONTEXT_OVERFLOW = re.compile(r"input token count.*exceeds|exceeds the maximum number of tokens|too many tokens", re.I | re.S)
_DELAY = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def gemini_error(provider: str, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
    error = _error_object(data)
    return error_from_object(provider, status, headers, error)


def error_from_object(provider: str, status: int, headers: Mapping[str, str], error: dict | None) -> GatewayError:
    message = f"upstream returned HTTP {status}"
    details: list[dict] = []
    if error:
        message = str(error.get("message") or message)
        details = [d for d in error.get("details") or () if isinstance(d, dict)]
    out_headers = {k.lower(): v for k, v in headers.items()}
    code: str | None = None
    if any(d.get("reason") == "API_KEY_INVALID" for d in details):
        return make_error(401, message, type="authentication_error", code="invalid_api_key", provider=provider)
    if status == 429:
        code = QUOTA if _per_day_quota(details) else None
        delay = _retry_delay(details)
        if delay is not None and "retry-after" not in out_headers and "retry-after-ms" not in out_headers:
            out_headers["retry-after"] = str(math.ceil(delay))
    elif status == 503:
        code = OVERLOADED
    elif status == 400 and _CONTEXT_OVERFLOW.search(message):
        code = CONTEXT_LENGTH
    return make_error(status, message, code=code, headers=out_headers, provider=provider)


def _error_object(data: bytes) -> dict | None:
    try:
        body: Any = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        return None
    if isinstance(body, list) and body and isinstance(body[0], dict):
        body = body[0]  # non-SSE streaming endpoints wrap the error in an array
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _retry_delay(details: list[dict]) -> float | None:
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.RetryInfo"):
            match = _DELAY.match(str(detail.get("retryDelay", "")))
            if match:
                return float(match.group(1))
    return None


def _per_day_quota(details: list[dict]) -> bool:
    for detail in details:
        if str(detail.get("@type", "")).endswith("google.rpc.QuotaFailure"):
            for violation in detail.get("violations") or ():
                if "PerDay" in str(violation.get("quotaId", "")):
                    return True
    return False


def stream_error(provider: str, error: dict) -> GatewayError:
    """An ``{"error": {...}}`` event inside a 200 stream; its ``code`` is the HTTP status."""
    status = error.get("code")
    status = status if isinstance(status, int) and 400 <= status <= 599 else 500
    return error_from_object(provider, status, {}, error)
