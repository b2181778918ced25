"""Anthropic-format ingress (``POST /v1/messages``): pure translation functions.

Clients speaking Anthropic's Messages API reach any upstream by going through the
gateway's OpenAI form: :func:`messages_to_openai` on the way in, and on the way out
:func:`openai_to_messages_response` (non-streaming), :class:`MessagesStreamEncoder`
(streaming) and :func:`anthropic_error_body` (errors). Anthropic upstreams skip all of this
(``AnthropicProvider.messages_request`` relays the body untouched).

Fields with no OpenAI equivalent (``cache_control``, signed ``thinking`` blocks, exact
thinking budgets, ``top_k``, tool ``is_error``) are kept as the extension fields the
Anthropic provider reads (LiteLLM's conventions) unless ``extensions=False``, which
yields a plain OpenAI body for strict OpenAI upstreams.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any

import orjson

from ..errors import GatewayError, bad_request

log = logging.getLogger("fastgw.ingress.anthropic")

# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
_TOOL_CHOICE_TYPES = ("auto", "any", "tool", "none")


def _missing(param: str) -> GatewayError:
    return bad_request(f"{param}: Field required", param, "missing_required_parameter")


def _wrong(param: str, expected: str) -> GatewayError:
    return bad_request(f"{param}: Input should be {expected}", param, "invalid_type")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate_messages_request(body: Any) -> None:
    """Reject malformed Messages requests with a 400 naming the field (Anthropic-style path)."""
    if not isinstance(body, dict):
        raise bad_request("request body must be a JSON object", None, "invalid_type")
    for field in ("model", "max_tokens", "messages"):
        if body.get(field) is None:
            raise _missing(field)
    if not isinstance(body["model"], str) or not body["model"]:
        raise _wrong("model", "a non-empty string")
    if not _is_int(body["max_tokens"]) or body["max_tokens"] < 1:
        raise _wrong("max_tokens", "an integer greater than or equal to 1")
    messages = body["messages"]
    if not isinstance(messages, list):
        raise _wrong("messages", "a valid list")
    for i, message in enumerate(messages):
        _validate_message(message, f"messages.{i}")
    system = body.get("system")
    if system is not None and not isinstance(system, str):
        _validate_blocks(system, "system")
    for field, check, expected in (
        ("stream", lambda v: isinstance(v, bool), "a valid boolean"),
        ("temperature", _is_number, "a valid number"),
        ("top_p", _is_number, "a valid number"),
        ("top_k", _is_int, "a valid integer"),
        ("metadata", lambda v: isinstance(v, dict), "a valid dictionary"),
        ("thinking", lambda v: isinstance(v, dict) and isinstance(v.get("type"), str), "a thinking object"),
        ("stop_sequences", lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v),
         "a valid list of strings"),
    ):
        if body.get(field) is not None and not check(body[field]):
            raise _wrong(field, expected)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise _wrong("tools", "a valid list")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise _wrong(f"tools.{i}", "a valid dictionary")
            if not isinstance(tool.get("name"), str):
                raise _missing(f"tools.{i}.name")
    tool_choice = body.get("tool_choice")
    if tool_choice is not None:
        if not isinstance(tool_choice, dict) or tool_choice.get("type") not in _TOOL_CHOICE_TYPES:
            raise _wrong("tool_choice", "an object with type auto, any, tool or none")
        if tool_choice["type"] == "tool" and not isinstance(tool_choice.get("name"), str):
            raise _missing("tool_choice.name")


def _validate_message(message: Any, path: str) -> None:
    if not isinstance(message, dict):
        raise _wrong(path, "a valid dictionary")
    if message.get("role") is None:
        raise _missing(f"{path}.role")
    if message["role"] not in ("user", "assistant"):
        raise _wrong(f"{path}.role", "'user' or 'assistant'")
    if "content" not in message:
        raise _missing(f"{path}.content")
    if not isinstance(message["content"], str):
        _validate_blocks(message["content"], f"{path}.content")


def _validate_blocks(blocks: Any, path: str) -> None:
    if not isinstance(blocks, list):
        raise _wrong(path, "a valid string or list of content blocks")
    for j, block in enumerate(blocks):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _wrong(f"{path}.{j}", "a content block with a type")


# --------------------------------------------------------------------------------------
# request: Anthropic -> OpenAI
# --------------------------------------------------------------------------------------
def thinking_to_effort(thinking: dict) -> str | None:
    """Nearest OpenAI reasoning_effort for an Anthropic thinking budget."""
    if thinking.get("type") == "disabled":
        return None
    budget = thinking.get("budget_tokens")
    if not _is_int(budget):
        return "medium"  # adaptive / unspecified budget
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def messages_to_openai(body: dict, *, extensions: bool = True) -> dict:
    """An Anthropic Messages request -> the equivalent OpenAI chat request."""
    out: dict[str, Any] = {"model": body["model"]}
    messages: list[dict] = []
    system = body.get("system")
    if isinstance(system, str):
        if system:
            messages.append({"role": "system", "content": system})
    elif isinstance(system, list) and system:
        parts = [_text_part(b, extensions) for b in system if b.get("type") == "text"]
        messages.append({"role": "system", "content": parts if len(parts) > 1 or _has_cache(parts) else
                         (parts[0]["text"] if parts else "")})
    for i, message in enumerate(body.get("messages") or []):
        if message["role"] == "user":
            messages.extend(_user_messages(message["content"], f"messages.{i}", extensions))
        else:
            messages.append(_assistant_message(message["content"], f"messages.{i}", extensions))
    out["messages"] = messages
    out["max_completion_tokens"] = body["max_tokens"]
    for field in ("temperature", "top_p"):
        if body.get(field) is not None:
            out[field] = body[field]
    if body.get("stop_sequences"):
        out["stop"] = list(body["stop_sequences"])
    tools = body.get("tools")
    if tools:
        out["tools"] = [_tool(t, f"tools.{i}", extensions) for i, t in enumerate(tools)]
        _tool_choice(body.get("tool_choice"), out)
    user_id = (body.get("metadata") or {}).get("user_id")
    if isinstance(user_id, str) and user_id:
        out["user"] = user_id
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        effort = thinking_to_effort(thinking)
        if effort:
            out["reasoning_effort"] = effort
        if extensions:
            out["thinking"] = thinking
    if extensions and body.get("top_k") is not None:
        out["top_k"] = body["top_k"]
    response_format = _output_format(body.get("output_config"))
    if response_format is not None:
        out["response_format"] = response_format
    if body.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _output_format(config: Any) -> dict | None:
    """Anthropic structured output (``output_config.format``) -> OpenAI ``response_format``."""
    fmt = config.get("format") if isinstance(config, dict) else None
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") != "json_schema" or not isinstance(fmt.get("schema"), dict):
        raise GatewayError(400, "output_config.format: only {\"type\": \"json_schema\", \"schema\": {...}} is supported",
                           "invalid_request_error", "output_config.format", "invalid_value")
    return {"type": "json_schema", "json_schema": {"name": fmt.get("name") or "output", "schema": fmt["schema"]}}


def _has_cache(parts: list[dict]) -> bool:
    return any("cache_control" in p for p in parts)


def _text_part(block: dict, extensions: bool) -> dict:
    part = {"type": "text", "text": block.get("text") or ""}
    if extensions and block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _image_part(block: dict, path: str, extensions: bool) -> dict:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        url = f"data:{source.get('media_type') or 'image/png'};base64,{source.get('data') or ''}"
    elif source.get("type") == "url":
        url = source.get("url") or ""
    else:
        raise bad_request(f"image source type {source.get('type')!r} is not supported here", f"{path}.source.type")
    part: dict[str, Any] = {"type": "image_url", "image_url": {"url": url}}
    if extensions and block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _document_part(block: dict, path: str, extensions: bool) -> dict:
    source = block.get("source") or {}
    if source.get("type") == "base64":
        media_type = source.get("media_type") or "application/pdf"
        file: dict[str, Any] = {"file_data": f"data:{media_type};base64,{source.get('data') or ''}"}
        if block.get("title"):
            file["filename"] = block["title"]
        part: dict[str, Any] = {"type": "file", "file": file}
    elif source.get("type") == "text":
        part = {"type": "text", "text": source.get("data") or ""}
    else:
        raise bad_request(f"document source type {source.get('type')!r} is not supported here",
                          f"{path}.source.type")
    if extensions and block.get("cache_control"):
        part["cache_control"] = block["cache_control"]
    return part


def _user_part(block: dict, path: str, extensions: bool) -> dict:
    kind = block.get("type")
    if kind == "text":
        return _text_part(block, extensions)
    if kind == "image":
        return _image_part(block, path, extensions)
    if kind == "document":
        return _document_part(block, path, extensions)
    raise bad_request(f"content block type {kind!r} is only supported with Anthropic upstreams", f"{path}.type")


def _user_messages(content: Any, path: str, extensions: bool) -> list[dict]:
    """One user turn -> OpenAI messages: tool results become ``tool`` messages, in order."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    out: list[dict] = []
    parts: list[dict] = []
    for j, block in enumerate(content):
        if block.get("type") == "tool_result":
            if parts:
                out.append({"role": "user", "content": parts})
                parts = []
            out.append(_tool_message(block, f"{path}.content.{j}", extensions))
        else:
            parts.append(_user_part(block, f"{path}.content.{j}", extensions))
    if parts or not out:
        out.append({"role": "user", "content": parts})
    return out


def _tool_message(block: dict, path: str, extensions: bool) -> dict:
    content = block.get("content")
    if content is None:
        value: Any = ""
    elif isinstance(content, str):
        value = content
    else:
        value = [_user_part(b, f"{path}.content.{k}", extensions) for k, b in enumerate(content)]
    message: dict[str, Any] = {"role": "tool", "tool_call_id": block.get("tool_use_id") or "", "content": value}
    if extensions:
        if block.get("is_error"):
            message["is_error"] = True
        if block.get("cache_control"):
            message["cache_control"] = block["cache_control"]
    return message


def _assistant_message(content: Any, path: str, extensions: bool) -> dict:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[dict] = []
    tool_calls: list[dict] = []
    thinking: list[dict] = []
    for j, block in enumerate(content):
        kind = block.get("type")
        if kind == "text":
            texts.append(_text_part(block, extensions))
        elif kind == "tool_use":
            call: dict[str, Any] = {"id": block.get("id") or "", "type": "function",
                                    "function": {"name": block.get("name") or "",
                                                 "arguments": orjson.dumps(block.get("input") or {}).decode()}}
            if extensions and block.get("cache_control"):
                call["cache_control"] = block["cache_control"]
            tool_calls.append(call)
        elif kind == "thinking":
            thinking.append({"type": "thinking", "thinking": block.get("thinking") or "",
                             "signature": block.get("signature") or ""})
        elif kind == "redacted_thinking":
            thinking.append({"type": "redacted_thinking", "data": block.get("data") or ""})
        else:
            raise bad_request(f"content block type {kind!r} is only supported with Anthropic upstreams",
                              f"{path}.content.{j}.type")
    message: dict[str, Any] = {"role": "assistant"}
    if not texts:
        message["content"] = None
    elif _has_cache(texts):
        message["content"] = texts
    else:
        message["content"] = "".join(p["text"] for p in texts)
    if tool_calls:
        message["tool_calls"] = tool_calls
    if extensions and thinking:
        signed = [b for b in thinking if b["type"] == "redacted_thinking" or b["signature"]]
        text = "".join(b.get("thinking", "") for b in thinking)
        if text:
            message["reasoning_content"] = text
        if signed:
            # Unsigned thinking (from a non-Anthropic upstream) cannot be replayed to Anthropic.
            message["thinking_blocks"] = signed
    return message


def _tool(tool: dict, path: str, extensions: bool) -> dict:
    if tool.get("type") not in (None, "custom"):
        raise bad_request(f"tool type {tool.get('type')!r} is only supported with Anthropic upstreams",
                          f"{path}.type")
    fn: dict[str, Any] = {"name": tool["name"]}
    if tool.get("description"):
        fn["description"] = tool["description"]
    fn["parameters"] = tool.get("input_schema") or {"type": "object", "properties": {}}
    out: dict[str, Any] = {"type": "function", "function": fn}
    if extensions and tool.get("cache_control"):
        out["cache_control"] = tool["cache_control"]
    return out


def _tool_choice(choice: Any, out: dict) -> None:
    if not isinstance(choice, dict):
        return
    kind = choice.get("type")
    if kind == "auto":
        out["tool_choice"] = "auto"
    elif kind == "any":
        out["tool_choice"] = "required"
    elif kind == "none":
        out["tool_choice"] = "none"
    elif kind == "tool":
        out["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    if choice.get("disable_parallel_tool_use") and kind != "none":
        out["parallel_tool_calls"] = False


# --------------------------------------------------------------------------------------
# response: OpenAI -> Anthropic
# --------------------------------------------------------------------------------------
STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: str | None) -> str:
    return STOP_REASONS.get(finish_reason or "stop", "end_turn")


def usage_to_anthropic(usage: dict | None) -> dict:
    """OpenAI usage -> Anthropic usage (``input_tokens`` = the uncached part only)."""
    usage = usage or {}
    prompt = _int(usage.get("prompt_tokens"))
    details = usage.get("prompt_tokens_details") or {}
    cache_read = _int(usage.get("cache_read_input_tokens")) or _int(details.get("cached_tokens"))
    cache_creation = _int(usage.get("cache_creation_input_tokens"))
    return {
        "input_tokens": max(0, prompt - cache_read - cache_creation),
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
        "output_tokens": _int(usage.get("completion_tokens")),
    }


def _int(value: Any) -> int:
    return value if _is_int(value) else 0


def message_id(openai_id: Any) -> str:
    text = openai_id if isinstance(openai_id, str) and openai_id else uuid.uuid4().hex
    return text if text.startswith("msg_") else "msg_" + text


def parse_arguments(arguments: Any) -> dict:
    """Tool arguments JSON text -> the ``input`` object ({} when not a JSON object)."""
    if isinstance(arguments, dict):
        return arguments
    if not arguments:
        return {}
    try:
        value = orjson.loads(arguments)
    except (orjson.JSONDecodeError, TypeError):
        log.warning("tool call arguments are not valid JSON; sending an empty input")
        return {}
    return value if isinstance(value, dict) else {}


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text") or "" for p in content if isinstance(p, dict))
    return ""


def openai_to_messages_response(resp: dict, model: str) -> dict:
    """An OpenAI ``chat.completion`` -> an Anthropic Message (first choice only)."""
    choices = resp.get("choices") or [{}]
    choice = next((c for c in choices if c.get("index", 0) == 0), choices[0])
    message = choice.get("message") or {}
    content: list[dict] = []
    blocks = message.get("thinking_blocks")
    if isinstance(blocks, list) and blocks:
        content.extend(_thinking_out(b) for b in blocks if isinstance(b, dict))
    else:
        reasoning = message.get("reasoning_content") or message.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            content.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    text = _text_of(message.get("content")) or (message.get("refusal") or "")
    if text:
        content.append({"type": "text", "text": text})
    for call in message.get("tool_calls") or []:
        fn = call.get("function") or {}
        content.append({"type": "tool_use", "id": call.get("id") or _tool_id(), "name": fn.get("name") or "",
                        "input": parse_arguments(fn.get("arguments"))})
    return {
        "id": message_id(resp.get("id")),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason(choice.get("finish_reason")),
        "stop_sequence": None,
        "usage": usage_to_anthropic(resp.get("usage")),
    }


def _thinking_out(block: dict) -> dict:
    if block.get("type") == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data") or ""}
    return {"type": "thinking", "thinking": block.get("thinking") or "", "signature": block.get("signature") or ""}


def _tool_id() -> str:
    return "toolu_" + uuid.uuid4().hex[:24]


# --------------------------------------------------------------------------------------
# streaming: OpenAI chunks -> Anthropic SSE
# --------------------------------------------------------------------------------------
def sse_event(name: str, data: dict) -> bytes:
    return b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


class MessagesStreamEncoder:
    """OpenAI ``chat.completion.chunk`` dicts (in order) -> Anthropic Messages SSE bytes.

    Blocks open as content of a new kind arrives (thinking, text, one per tool call) and
    close when another kind starts, so indexes are sequential as Anthropic's are. A
    ``thinking_blocks`` delta (the Anthropic provider sends one per finished thinking
    block) supplies the signature. ``message_delta``/``message_stop`` are written by
    :meth:`finish`, after the usage chunk, so the final usage is exact. Only choice 0 is
    encoded; tool-call fragments for a call whose block was already closed are dropped.
    """

    def __init__(self, model: str, message_id: str | None = None, input_tokens: int = 0) -> None:
        self._model = model
        self._id = message_id
        self._input_tokens = input_tokens
        self._started = False
        self._finished = False
        self._index = -1
        self._open: str | None = None  # "text" | "thinking" | "tool"
        self._open_tool: int | None = None
        self._open_text = False  # the open thinking block got thinking text
        self._tools: set[int] = set()
        self._finish_reason: str | None = None
        self._usage: dict | None = None

    # public ------------------------------------------------------------------------------
    def feed(self, chunk: dict) -> bytes:
        out: list[bytes] = []
        self._start(chunk, out)
        if isinstance(chunk.get("usage"), dict):
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            self._on_delta(delta, out)
            if choice.get("finish_reason"):
                self._finish_reason = choice["finish_reason"]
                self._close(out)
        return b"".join(out)

    def finish(self) -> bytes:
        """The closing events; call once after the last chunk."""
        if self._finished:
            return b""
        out: list[bytes] = []
        self._start({}, out)
        self._close(out)
        self._finished = True
        usage = usage_to_anthropic(self._usage)
        if self._usage is None:
            usage["input_tokens"] = self._input_tokens
        out.append(sse_event("message_delta", {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason(self._finish_reason), "stop_sequence": None},
            "usage": usage,
        }))
        out.append(sse_event("message_stop", {"type": "message_stop"}))
        return b"".join(out)

    def error(self, err: GatewayError) -> bytes:
        """An in-stream ``error`` event; the stream ends after it."""
        self._finished = True
        return sse_event("error", anthropic_error_body(err))

    @staticmethod
    def ping() -> bytes:
        return sse_event("ping", {"type": "ping"})

    # internals ---------------------------------------------------------------------------
    def _start(self, chunk: dict, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        if self._id is None:
            self._id = message_id(chunk.get("id"))
        out.append(sse_event("message_start", {"type": "message_start", "message": {
            "id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": [],
            "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self._input_tokens, "output_tokens": 0},
        }}))

    def _on_delta(self, delta: dict, out: list[bytes]) -> None:
        reasoning = delta.get("reasoning_content") or delta.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._open_text = True
            self._delta({"type": "thinking_delta", "thinking": reasoning}, out)
        for block in delta.get("thinking_blocks") or []:
            if isinstance(block, dict):
                self._thinking_block(block, out)
        text = delta.get("content")
        if not isinstance(text, str) or not text:
            text = delta.get("refusal")
        if isinstance(text, str) and text:
            self._open_block("text", {"type": "text", "text": ""}, out)
            self._delta({"type": "text_delta", "text": text}, out)
        for call in delta.get("tool_calls") or []:
            if isinstance(call, dict):
                self._tool_call(call, out)

    def _thinking_block(self, block: dict, out: list[bytes]) -> None:
        if block.get("type") == "redacted_thinking":
            self._close(out)
            self._begin("redacted_thinking", {"type": "redacted_thinking", "data": block.get("data") or ""}, out)
            self._close(out)
            return
        if self._open != "thinking":
            self._open_block("thinking", {"type": "thinking", "thinking": "", "signature": ""}, out)
            self._open_text = False
        if not self._open_text and block.get("thinking"):
            self._delta({"type": "thinking_delta", "thinking": block["thinking"]}, out)
        if block.get("signature"):
            self._delta({"type": "signature_delta", "signature": block["signature"]}, out)
        self._close(out)

    def _tool_call(self, call: dict, out: list[bytes]) -> None:
        index = call.get("index", 0)
        fn = call.get("function") or {}
        if index not in self._tools:
            self._tools.add(index)
            self._close(out)
            self._begin("tool", {"type": "tool_use", "id": call.get("id") or _tool_id(),
                                 "name": fn.get("name") or "", "input": {}}, out)
            self._open_tool = index
        arguments = fn.get("arguments")
        if isinstance(arguments, str) and arguments:
            if self._open == "tool" and self._open_tool == index:
                self._delta({"type": "input_json_delta", "partial_json": arguments}, out)
            else:
                log.warning("dropping arguments of tool call %s: its block is already closed", index)

    def _open_block(self, kind: str, block: dict, out: list[bytes]) -> None:
        if self._open != kind:
            self._close(out)
            self._begin(kind, block, out)

    def _begin(self, kind: str, block: dict, out: list[bytes]) -> None:
        self._index += 1
        self._open = kind
        out.append(sse_event("content_block_start",
                             {"type": "content_block_start", "index": self._index, "content_block": block}))

    def _delta(self, delta: dict, out: list[bytes]) -> None:
        out.append(sse_event("content_block_delta",
                             {"type": "content_block_delta", "index": self._index, "delta": delta}))

    def _close(self, out: list[bytes]) -> None:
        if self._open is None:
            return
        out.append(sse_event("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        self._open = None
        self._open_tool = None
        self._open_text = False


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
_ERROR_TYPES: dict[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}


def anthropic_error_type(err: GatewayError) -> str:
    if err.code == "overloaded" or err.status == 529:
        return "overloaded_error"
    if err.status in _ERROR_TYPES:
        return _ERROR_TYPES[err.status]
    return "api_error" if err.status >= 500 else "invalid_request_error"


def anthropic_error_status(err: GatewayError) -> int:
    """The HTTP status for an Anthropic client: overload is 529 in Anthropic's world."""
    return 529 if err.code == "overloaded" else err.status


def anthropic_error_body(err: GatewayError) -> dict:
    return {"type": "error", "error": {"type": anthropic_error_type(err), "message": err.message}}
