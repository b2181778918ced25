"""Cohere error bodies (``{"id"?, "message"}``) -> GatewayError (providers.md 6.5, table 9.3).

400 starting "too many tokens" is a context overflow; 429 is a retryable rate limit (no
hint headers); 498 (invalid token) is reported as 401 and 402 (payment) as
``insufficient_quota`` so the router fails over instead of retrying.
"""
from __future__ import annotations

from typing import Any, Mapping

import orjson

from ...errors import GatewayError
from ..common import CONTEXT_LENGTH, QUOTA, make_error


def cohere_error(provider: str, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
    message = f"upstream returned HTTP {status}"
    try:
        body: Any = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    code: str | None = None
    if status == 400 and message.lower().startswith("too many tokens"):
        code = CONTEXT_LENGTH
    elif status == 402:
        code = QUOTA
    elif status == 498:
        return make_error(401, message, type="authentication_error", code="invalid_api_key", provider=provider)
    return make_error(status, message, code=code, headers=headers, provider=provider)
