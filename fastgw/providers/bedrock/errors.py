"""Bedrock errors -> GatewayError (reference 5.7 and 9.3).

The exception name comes from the ``x-amzn-ErrorType`` header (``Name:namespace``) or, inside a
stream, from the ``:exception-type`` header of an exception frame; both name the same service
exceptions (lowerCamel in streams), so one table serves both.
"""
from __future__ import annotations

from typing import Mapping

import orjson

from ...errors import GatewayError
from ..common import CONTEXT_LENGTH, OVERLOADED, make_error

PROVIDER = "bedrock"

# exception name (lowercased) -> (status when the HTTP status is unknown, code or None)
_EXCEPTIONS: dict[str, tuple[int, str | None]] = {
    "validationexception": (400, None),
    "accessdeniedexception": (403, None),
    "unrecognizedclientexception": (403, "invalid_api_key"),
    "invalidsignatureexception": (403, "invalid_api_key"),
    "incompletesignatureexception": (403, "invalid_api_key"),
    "missingauthenticationtokenexception": (403, "invalid_api_key"),
    "expiredtokenexception": (403, "invalid_api_key"),
    "resourcenotfoundexception": (404, "model_not_found"),
    "modeltimeoutexception": (408, "timeout"),
    "modelerrorexception": (424, "server_error"),
    "throttlingexception": (429, "rate_limit_exceeded"),
    "modelnotreadyexception": (429, OVERLOADED),
    "internalserverexception": (500, "server_error"),
    # A model failing mid-stream is transient from the caller's side: retry / fail over.
    "modelstreamerrorexception": (502, "server_error"),
    "serviceunavailableexception": (503, "server_error"),
}
_AUTH_EXCEPTIONS = frozenset(name for name, (_, code) in _EXCEPTIONS.items() if code == "invalid_api_key")
# Wordings of a prompt that does not fit the model's window (Bedrock's own, then the model
# vendors' that Bedrock passes through).
_CONTEXT_PHRASES = ("input is too long", "too many input tokens", "prompt is too long", "context window",
                    "maximum context length", "exceeds the maximum number of tokens", "input length")


def _header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if value is None:
        for key, val in headers.items():
            if key.lower() == name:
                return val
        return ""
    return value


def exception_name(headers: Mapping[str, str], body: object) -> str:
    """``x-amzn-ErrorType: ThrottlingException:http://...`` -> ``ThrottlingException``; falls
    back to a JSON ``__type`` (``ns#Name``)."""
    value = _header(headers, "x-amzn-errortype")
    if value:
        return value.split(":", 1)[0].strip()
    if isinstance(body, dict) and isinstance(body.get("__type"), str):
        return body["__type"].rsplit("#", 1)[-1]
    return ""


def classify(status: int, name: str, message: str, headers: Mapping[str, str] | None = None) -> GatewayError:
    key = name.lower()
    _, code = _EXCEPTIONS.get(key, (status, None))
    if status == 400 and any(phrase in message.lower() for phrase in _CONTEXT_PHRASES):
        code = CONTEXT_LENGTH
    etype = "authentication_error" if key in _AUTH_EXCEPTIONS else None
    text = f"{name}: {message}" if name else message
    return make_error(status, text, type=etype, code=code, headers=headers, provider=PROVIDER)


def http_error(status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
    """An error response body: ``{"message": ...}`` (sometimes ``Message``); HTML or empty
    bodies from intermediaries are classified by status alone."""
    try:
        body = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        body = None
    message = f"upstream returned HTTP {status}"
    if isinstance(body, dict):
        found = body.get("message") or body.get("Message")
        if isinstance(found, str) and found:
            message = found
    return classify(status, exception_name(headers, body), message, headers)


def stream_exception(exception_type: str, payload: bytes) -> GatewayError:
    """An exception frame after the 200 (``:message-type: exception``)."""
    try:
        body = orjson.loads(payload) if payload else None
    except orjson.JSONDecodeError:
        body = None
    message = "upstream stream error"
    if isinstance(body, dict):
        found = body.get("message") or body.get("Message")
        if isinstance(found, str) and found:
            message = found
    status, _ = _EXCEPTIONS.get(exception_type.lower(), (502, None))
    return classify(status, exception_type, message)


def stream_error_frame(error_code: str, error_message: str) -> GatewayError:
    """A ``:message-type: error`` frame: the code and message ride in headers."""
    status, _ = _EXCEPTIONS.get(error_code.lower(), (502, None))
    return classify(status, error_code, error_message or "upstream stream error")


def malformed_stream(detail: str) -> GatewayError:
    return GatewayError(502, f"{PROVIDER}: malformed event stream from upstream ({detail})", "api_error", None,
                        "malformed_stream", retryable=True)


def truncated_stream() -> GatewayError:
    return GatewayError(502, f"{PROVIDER}: upstream stream ended before its messageStop and metadata events",
                        "api_error", None, "stream_truncated", retryable=True)
