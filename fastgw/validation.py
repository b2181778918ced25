"""Read and validate request bodies; every failure is a 400/413 naming the field.

Reading (size limits, JSON) happens here; the OpenAI endpoints' field rules run in the
compiled ``fastgw._core.request``, which returns what routing and accounting need.
"""
from __future__ import annotations

import orjson
from starlette.requests import Request
from starlette.types import Receive

from ._core.request import RequestInfo, validate_chat, validate_completions, validate_embeddings
from .errors import GatewayError, bad_request

__all__ = ["RequestInfo", "read_json", "too_large", "validate_chat", "validate_completions", "validate_embeddings"]


async def read_json(request: Request, max_bytes: int) -> dict:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise bad_request("invalid Content-Length header", None, "invalid_request") from None
        if declared > max_bytes:
            raise too_large(max_bytes)
    raw = await _read_body(request.receive, max_bytes)
    if not raw.strip():
        raise bad_request("request body is empty; expected a JSON object", None, "invalid_json")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise bad_request(f"request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
                          None, "invalid_json") from None
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object", None, "invalid_json")
    return body


async def _read_body(receive: Receive, max_bytes: int) -> bytes:
    """The body, from the ASGI messages themselves: ``Request.stream()`` is an async generator,
    and each one made is registered with the event loop (a weak set) and finalised again.
    The route reads the body once, here."""
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise client_gone()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > max_bytes:
                raise too_large(max_bytes)
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 and type(chunks[0]) is bytes else b"".join(chunks)


def client_gone() -> GatewayError:
    """The client closed the connection mid-body: nothing reached a provider, so the routes
    count it (499, as a stream the client abandons) and log it, with no internal error."""
    return GatewayError(499, "the client closed the connection before sending the whole request body",
                        "invalid_request_error", None, "client_disconnected")


def too_large(max_bytes: int) -> GatewayError:
    return GatewayError(413, f"request body exceeds the limit of {max_bytes} bytes", "invalid_request_error", None,
                        "request_too_large")
