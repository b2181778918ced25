"""Building blocks for providers that translate a native wire format into OpenAI's.

Native providers (Gemini, Cohere, Ollama, ...) all produce the same OpenAI shapes:
``chat.completion`` bodies, ``chat.completion.chunk`` events, usage objects, embeddings
lists. Keeping the shapes here means every translator emits byte-compatible output and
fixes land once.
"""
from __future__ import annotations

import base64
import re
import struct
import time
import uuid
from typing import Any, Iterable

import orjson

from ..errors import GatewayError, bad_request

# -- identifiers ------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def tool_call_id() -> str:
    """An OpenAI-style call id for upstreams that do not number their tool calls."""
    return "call_" + uuid.uuid4().hex[:24]


# -- request side ----------------------------------------------------------------------


def max_output_tokens(body: dict) -> int | None:
    """``max_completion_tokens`` wins over the legacy ``max_tokens``."""
    value = body.get("max_completion_tokens")
    return body.get("max_tokens") if value is None else value


def stop_list(stop: Any) -> list[str] | None:
    if stop is None:
        return None
    return [stop] if isinstance(stop, str) else list(stop)


_DATA_URL = re.compile(r"^data:([^;,]+)?((?:;[^;,]*)*?);base64,(.*)$", re.S)


def parse_data_url(url: str) -> tuple[str, str] | None:
    """``data:<mime>;base64,<b64>`` -> (mime, b64); None for anything else."""
    match = _DATA_URL.match(url)
    if match is None:
        return None
    return match.group(1) or "application/octet-stream", match.group(3)


def tool_arguments(arguments: Any, provider: str) -> Any:
    """OpenAI tool-call ``arguments`` (JSON text) as the object native APIs want."""
    if arguments is None or arguments == "":
        return {}
    if not isinstance(arguments, str):
        return arguments
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise bad_request(f"tool call arguments are not valid JSON (provider {provider!r})", "messages") from None


def arguments_text(arguments: Any) -> str:
    """Native tool-call arguments (usually an object) as OpenAI's JSON text."""
    if isinstance(arguments, str):
        return arguments
    return orjson.dumps(arguments if arguments is not None else {}).decode()


def tool_names_by_id(messages: Iterable[dict]) -> dict[str, str]:
    """Function name of every assistant tool call, by call id (native APIs match results by name)."""
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "assistant":
            for call in message.get("tool_calls") or ():
                function = call.get("function") or {}
                if call.get("id") and function.get("name"):
                    names[call["id"]] = function["name"]
    return names


def tool_result_name(message: dict, names: dict[str, str], provider: str) -> str:
    name = names.get(message.get("tool_call_id") or "") or message.get("name")
    if not name:
        raise bad_request(
            f"tool message with tool_call_id {message.get('tool_call_id')!r} does not answer any earlier assistant "
            f"tool call; provider {provider!r} matches tool results by function name",
            "messages",
        )
    return name


def function_tools(body: dict) -> list[dict]:
    """The ``function`` objects of the request's function tools (other kinds are rejected earlier)."""
    return [t["function"] for t in body.get("tools") or () if isinstance(t, dict) and t.get("type") == "function"]


def reject_non_function_tools(body: dict, provider: str, drop: bool) -> None:
    tools = body.get("tools")
    if not tools:
        return
    other = [t for t in tools if not (isinstance(t, dict) and t.get("type") == "function")]
    if not other:
        return
    if not drop:
        kind = other[0].get("type") if isinstance(other[0], dict) else other[0]
        raise GatewayError(
            400, f"tool type {kind!r} is not supported by provider {provider!r}; set drop_params: true to drop it",
            "invalid_request_error", "tools", "unsupported_parameter",
        )
    body["tools"] = [t for t in tools if t not in other]


# -- response side ---------------------------------------------------------------------


def make_usage(prompt: int, completion: int, *, cached: int = 0, reasoning: int = 0, total: int | None = None) -> dict:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion if total is None else total,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def assistant_message(
    content: str | None, *, reasoning: str | None = None, tool_calls: list[dict] | None = None
) -> dict:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    if tool_calls:
        message["tool_calls"] = tool_calls
    return message


def tool_call(call_id: str, name: str, arguments: Any) -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments_text(arguments)}}


def completion(
    response_id: str, model: str, choices: list[dict], usage: dict | None, created: int | None = None
) -> dict:
    body = {
        "id": response_id,
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": choices,
    }
    if usage is not None:
        body["usage"] = usage
    return body


def choice(index: int, message: dict, finish_reason: str | None, logprobs: dict | None = None) -> dict:
    return {"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish_reason}


class ChunkWriter:
    """Builds ``chat.completion.chunk`` dicts for one stream; the first delta of each
    choice carries ``role`` as OpenAI's does."""

    __slots__ = ("id", "model", "created", "_started")

    def __init__(self, response_id: str, model: str, created: int | None = None) -> None:
        self.id = response_id
        self.model = model
        self.created = int(time.time()) if created is None else created
        self._started: set[int] = set()

    def delta(self, index: int, delta: dict, finish_reason: str | None = None, logprobs: dict | None = None) -> dict:
        if index not in self._started:
            self._started.add(index)
            delta = {"role": "assistant", **delta}
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}],
        }

    def usage(self, usage: dict) -> dict:
        """The trailing usage-only chunk (``choices: []``), as with ``include_usage``."""
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": [],
            "usage": usage,
        }


def malformed_stream(provider: str) -> GatewayError:
    return GatewayError(
        502, f"{provider}: malformed stream event from upstream", "api_error", None, "malformed_stream", retryable=True
    )


def finish_error(provider: str, reason: str, detail: str | None = None) -> GatewayError:
    """The upstream stopped generating for a reason that is a failure, not an answer."""
    message = f"{provider}: generation failed (finish reason {reason})"
    if detail:
        message += f": {detail}"
    return GatewayError(502, message, "api_error", None, "server_error", retryable=True)


def load_json(provider: str, data: bytes) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise malformed_stream(provider) from None


# -- embeddings ------------------------------------------------------------------------


def float32_base64(vector: list[float]) -> str:
    """OpenAI's ``encoding_format: base64``: packed little-endian float32."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embedding_inputs(body: dict, provider: str) -> tuple[list[str], bool]:
    """(texts, was_a_single_string); token-id inputs cannot be sent to text-only APIs."""
    value = body.get("input")
    if isinstance(value, str):
        return [value], True
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value), False
    raise GatewayError(
        400, f"input must be a string or a list of strings for provider {provider!r} (token ids are not supported)",
        "invalid_request_error", "input", "unsupported_parameter",
    )


def embeddings_list(vectors: list[list[float]], model: str, encoding_format: str | None, prompt_tokens: int) -> dict:
    encode = float32_base64 if encoding_format == "base64" else (lambda v: v)
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": encode(v)} for i, v in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def estimate_tokens(texts: Iterable[str]) -> int:
    """Rough count (4 characters a token) for upstreams that report no embedding usage."""
    return sum(max(1, (len(t) + 3) // 4) for t in texts)
