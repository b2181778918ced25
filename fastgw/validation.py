"""Read and validate request bodies; every failure is a 400/413 naming the field."""
from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from .errors import GatewayError, bad_request

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


async def read_json(request: Request, max_bytes: int) -> dict:
    length = request.headers.get("content-length")
    if length is not None:
        try:
            declared = int(length)
        except ValueError:
            raise bad_request("invalid Content-Length header", None, "invalid_request") from None
        if declared > max_bytes:
            raise too_large(max_bytes)
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise too_large(max_bytes)
        chunks.append(chunk)
    raw = b"".join(chunks)
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


def too_large(max_bytes: int) -> GatewayError:
    return GatewayError(413, f"request body exceeds the limit of {max_bytes} bytes", "invalid_request_error", None,
                        "request_too_large")


def _require_str(body: dict, field: str) -> str:
    value = body.get(field)
    if value is None:
        raise bad_request(f"'{field}' is a required property", field, "missing_required_parameter")
    if not isinstance(value, str) or not value:
        raise bad_request(f"'{field}' must be a non-empty string", field)
    return value


def _optional(body: dict, field: str, types: tuple[type, ...], what: str) -> Any:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, types) or (bool not in types and isinstance(value, bool)):
        raise bad_request(f"'{field}' must be {what}", field)
    return value


def _common_sampling(body: dict) -> None:
    _optional(body, "stream", (bool,), "a boolean")
    for field in ("max_tokens", "max_completion_tokens", "n"):
        value = _optional(body, field, (int,), "an integer")
        if value is not None and value < 1:
            raise bad_request(f"'{field}' must be at least 1", field)
    for field, low, high in (("temperature", 0, 2), ("top_p", 0, 1), ("presence_penalty", -2, 2),
                             ("frequency_penalty", -2, 2)):
        value = _optional(body, field, (int, float), "a number")
        if value is not None and not low <= value <= high:
            raise bad_request(f"'{field}' must be between {low} and {high}", field)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (
        isinstance(stop, list) and all(isinstance(s, str) for s in stop)
    ):
        raise bad_request("'stop' must be a string or an array of strings", "stop")
    options = _optional(body, "stream_options", (dict,), "an object")
    if options is not None and not body.get("stream"):
        raise bad_request("'stream_options' is only allowed when 'stream' is true", "stream_options")


def validate_chat(body: dict) -> None:
    _require_str(body, "model")
    messages = body.get("messages")
    if messages is None:
        raise bad_request("'messages' is a required property", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array", "messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"'{where}' must be an object", where)
        role = message.get("role")
        if role not in ROLES:
            raise bad_request(f"'{where}.role' must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise bad_request(f"'{where}.content' must be a string or an array of content parts", f"{where}.content")
        if content is None and role in ("user", "system", "developer") :
            raise bad_request(f"'{where}.content' is required for role '{role}'", f"{where}.content")
    tools = _optional(body, "tools", (list,), "an array")
    for index, tool in enumerate(tools or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("function") or tool.get("type"), (dict, str)):
            raise bad_request(f"'tools[{index}]' must be a tool object", f"tools[{index}]")
    _common_sampling(body)


def validate_completions(body: dict) -> None:
    _require_str(body, "model")
    prompt = body.get("prompt")
    if prompt is None:
        raise bad_request("'prompt' is a required property", "prompt", "missing_required_parameter")
    if not isinstance(prompt, (str, list)):
        raise bad_request("'prompt' must be a string or an array", "prompt")
    _common_sampling(body)


def validate_embeddings(body: dict) -> None:
    _require_str(body, "model")
    inputs = body.get("input")
    if inputs is None:
        raise bad_request("'input' is a required property", "input", "missing_required_parameter")
    if isinstance(inputs, str):
        if not inputs:
            raise bad_request("'input' must not be an empty string", "input")
    elif isinstance(inputs, list):
        if not inputs:
            raise bad_request("'input' must not be an empty array", "input")
        if len(inputs) > 2048:
            raise bad_request("'input' may hold at most 2048 items", "input")
        for index, item in enumerate(inputs):
            ok = (isinstance(item, str) and item) or (isinstance(item, int) and not isinstance(item, bool)) or (
                isinstance(item, list) and item and all(isinstance(t, int) for t in item))
            if not ok:
                raise bad_request(f"'input[{index}]' must be a non-empty string or an array of token ids",
                                  f"input[{index}]")
    else:
        raise bad_request("'input' must be a string or an array", "input")
    fmt = body.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise bad_request("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dims = _optional(body, "dimensions", (int,), "an integer")
    if dims is not None and dims < 1:
        raise bad_request("'dimensions' must be at least 1", "dimensions")
