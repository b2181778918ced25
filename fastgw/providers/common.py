"""Helpers shared by provider modules: error classification, retry hints, params."""
from __future__ import annotations

import email.utils
import time
from typing import TYPE_CHECKING, Any, Mapping

import orjson

from ..errors import GatewayError
from .base import UpstreamRequest, unsupported

if TYPE_CHECKING:
    from ..config.schema import Deployment

# Codes the router understands (fallback kinds). Providers translate onto these.
CONTEXT_LENGTH = "context_length_exceeded"
CONTENT_POLICY = "content_policy_violation"
RATE_LIMIT = "rate_limit_exceeded"
QUOTA = "insufficient_quota"
OVERLOADED = "overloaded"
SERVER_ERROR = "server_error"

_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds or HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - time.time())


def is_retryable(status: int, code: str | None) -> bool:
    if code == QUOTA:
        return False
    return status in (408, 429, 529) or status >= 500


def make_error(
    status: int,
    message: str,
    *,
    type: str | None = None,
    param: str | None = None,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
    provider: str = "",
) -> GatewayError:
    """Build the client-facing error for an upstream failure; the upstream status is kept."""
    retry_after = parse_retry_after(headers) if headers else None
    out_headers: dict[str, str] = {}
    if headers:
        for name in ("retry-after", "retry-after-ms"):
            if headers.get(name):
                out_headers[name] = headers[name]
    if code is None:
        if status == 429:
            code = RATE_LIMIT
        elif status == 529:
            code = OVERLOADED
        elif status >= 500:
            code = SERVER_ERROR
    client_status = status if 400 <= status <= 599 else 502
    if client_status == 529:
        client_status = 503  # OpenAI SDKs know 503 as "overloaded"; 529 is Anthropic-only
    prefix = f"{provider}: " if provider else ""
    return GatewayError(
        client_status,
        prefix + message,
        type or _STATUS_TYPES.get(status, "api_error"),
        param,
        code,
        out_headers,
        retryable=is_retryable(status, code),
        retry_after=retry_after,
    )


def with_extra_params(dep: "Deployment", body: dict) -> dict:
    """Config-level extra params fill in what the client did not set."""
    if dep.extra:
        for key, value in dep.extra.items():
            body.setdefault(key, value)
    if dep.params.max_tokens is not None and "max_tokens" not in body and "max_completion_tokens" not in body:
        body["max_tokens"] = dep.params.max_tokens
    return body


def reject_or_drop(dep: "Deployment", body: dict, params: tuple[str, ...], provider: str) -> None:
    """Remove params the provider cannot honour if drop_params is on, else 400 naming the first."""
    for param in params:
        if param in body and body[param] is not None:
            if param == "n" and body[param] == 1:
                continue
            if param == "logprobs" and body[param] is False:
                continue
            if dep.drop_params:
                body.pop(param)
            else:
                raise unsupported(provider, param)


def json_post(url: str, body: dict, auth: dict[str, str], accept: str = "application/json") -> UpstreamRequest:
    """The JSON POST every HTTP provider sends; ``auth`` holds the provider's auth headers."""
    headers = {"content-type": "application/json", "accept": accept}
    headers.update(auth)
    return UpstreamRequest("POST", url, headers, orjson.dumps(body))


def bearer(key: str | None) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"} if key else {}


def join_url(base: str, path: str) -> str:
    return base.rstrip("/") + "/" + path.lstrip("/")


def first_text(value: Any) -> str:
    """Text of an OpenAI message content (string or list of parts)."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return "".join(p.get("text", "") for p in value if isinstance(p, dict) and p.get("type") in ("text", "input_text"))
