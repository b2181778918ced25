"""One exception type for every error a client can see, in OpenAI's error shape."""
from __future__ import annotations

from typing import Mapping

import orjson

# Error kinds the router acts on (issue: retries and fallbacks). Providers map their
# upstream errors onto these so routing never parses provider-specific bodies.
RETRYABLE_CODES = frozenset({"rate_limit_exceeded", "overloaded", "server_error", "timeout", "connection_error"})


class GatewayError(Exception):
    """An error with an HTTP status and an OpenAI-style body.

    ``code`` is machine-readable (``context_length_exceeded``, ``rate_limit_exceeded``,
    ``content_policy_violation``, ...); the router decides retries and fallbacks from
    ``retryable`` and ``code`` only.
    """

    def __init__(
        self,
        status: int,
        message: str,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = dict(headers or {})
        self.retryable = retryable
        self.retry_after = retry_after

    def to_dict(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def __repr__(self) -> str:
        return f"GatewayError({self.status}, {self.code!r}, {self.message!r})"


def bad_request(message: str, param: str | None = None, code: str | None = "invalid_value") -> GatewayError:
    return GatewayError(400, message, "invalid_request_error", param, code)


def upstream_unreachable(message: str) -> GatewayError:
    return GatewayError(502, message, "api_error", None, "connection_error", retryable=True)


def upstream_timeout(message: str) -> GatewayError:
    return GatewayError(504, message, "api_error", None, "timeout", retryable=True)
