"""Anthropic Messages SSE streams: translated to OpenAI chunks, or relayed unchanged.

:class:`AnthropicStreamDecoder` (OpenAI clients) emits, in order: a role chunk at
``message_start``; ``content`` / ``reasoning_content`` / ``tool_calls`` deltas as blocks
stream; at a thinking block's stop one ``thinking_blocks`` delta holding the complete
block with its signature (what a client sends back in the next turn); a finish chunk at
``message_delta``; a usage chunk (``choices: []``) at ``message_stop``, the terminator.

:class:`MessagesPassthroughDecoder` (Anthropic clients of ``/v1/messages``) returns the
bytes unchanged and only watches the events that carry usage and termination.
"""
from __future__ import annotations

import time
from typing import Any

import orjson

from ..._core.framing import SSEDecoder
from ...errors import GatewayError
from ..openai_compat import truncated
from .errors import PROVIDER, stream_error
from .request import JSON_TOOL_NAME
from .response import finish_reason, tool_call, usage_to_openai


def malformed() -> GatewayError:
    return GatewayError(502, f"{PROVIDER}: malformed stream event from upstream", "api_error", None,
                        "malformed_stream", retryable=True)


def _load(payload: bytes) -> dict:
    try:
        value = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise malformed() from None
    if not isinstance(value, dict):
        raise malformed()
    return value


def merge_usage(target: dict, usage: Any) -> None:
    """``message_delta`` usage is cumulative: present, non-null fields overwrite."""
    if isinstance(usage, dict):
        for key, value in usage.items():
            if value is not None:
                target[key] = value


class _Block:
    """One open content block: what kind, and what is needed when it stops."""

    __slots__ = ("kind", "tool_index", "block_id", "name", "input", "has_args", "thinking", "signature", "data")

    def __init__(self, kind: str) -> None:
        self.kind = kind  # text | tool | json | thinking | redacted | other
        self.tool_index = 0
        self.block_id = ""
        self.name = ""
        self.input: Any = None
        self.has_args = False
        self.thinking: list[str] = []
        self.signature = ""
        self.data = ""


class AnthropicStreamDecoder:
    """Anthropic stream -> OpenAI ``chat.completion.chunk`` dicts (see module doc)."""

    __slots__ = ("_sse", "usage", "done", "_raw_usage", "_id", "_model", "_created", "_blocks", "_tool_count",
                 "_finished")

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self.usage: dict | None = None
        self.done = False
        self._raw_usage: dict = {}
        self._id = ""
        self._model: str | None = None
        self._created = int(time.time())
        self._blocks: dict[int, _Block] = {}
        self._tool_count = 0
        self._finished = False

    def feed(self, data: bytes) -> list[dict]:
        out: list[dict] = []
        for event, payload in self._sse.feed(data):
            if self.done:
                break
            self._on_event(event, payload, out)
        return out

    def close(self) -> list[dict]:
        if not self.done:
            raise truncated(PROVIDER)
        return []

    # events ------------------------------------------------------------------------------
    def _on_event(self, event: str | None, payload: bytes, out: list[dict]) -> None:
        if event == "ping":
            return
        data = _load(payload)
        kind = event or data.get("type")
        if kind == "content_block_delta":
            self._on_delta(data, out)
        elif kind == "content_block_start":
            self._on_block_start(data, out)
        elif kind == "content_block_stop":
            self._on_block_stop(data, out)
        elif kind == "message_start":
            message = data.get("message") or {}
            self._id = message.get("id") or ""
            self._model = message.get("model")
            merge_usage(self._raw_usage, message.get("usage"))
            self.usage = usage_to_openai(self._raw_usage)
            out.append(self._chunk({"role": "assistant", "content": ""}))
        elif kind == "message_delta":
            merge_usage(self._raw_usage, data.get("usage"))
            self.usage = usage_to_openai(self._raw_usage)
            stop_reason = (data.get("delta") or {}).get("stop_reason")
            if stop_reason is not None and not self._finished:
                self._finished = True
                out.append(self._chunk({}, finish_reason(stop_reason, self._tool_count > 0)))
        elif kind == "message_stop":
            self.done = True
            if not self._finished:
                self._finished = True
                out.append(self._chunk({}, "tool_calls" if self._tool_count else "stop"))
            self.usage = usage_to_openai(self._raw_usage)
            out.append(self._usage_chunk())
        elif kind == "error":
            raise stream_error(data)
        # unknown event types are ignored, as Anthropic asks

    def _on_block_start(self, data: dict, out: list[dict]) -> None:
        block = data.get("content_block") or {}
        btype = block.get("type")
        if btype == "text":
            state = _Block("text")
            if block.get("text"):
                out.append(self._chunk({"content": block["text"]}))
        elif btype == "tool_use" and block.get("name") == JSON_TOOL_NAME:
            state = _Block("json")
            state.input = block.get("input")
        elif btype == "tool_use":
            state = _Block("tool")
            state.tool_index = self._tool_count
            self._tool_count += 1
            state.block_id = block.get("id") or ""
            state.name = block.get("name") or ""
            state.input = block.get("input")
            out.append(self._chunk({"tool_calls": [tool_call(state.tool_index, state.block_id, state.name, "")]}))
        elif btype == "thinking":
            state = _Block("thinking")
            if block.get("thinking"):
                state.thinking.append(block["thinking"])
                out.append(self._chunk({"reasoning_content": block["thinking"]}))
            state.signature = block.get("signature") or ""
        elif btype == "redacted_thinking":
            state = _Block("redacted")
            state.data = block.get("data") or ""
        else:
            state = _Block("other")  # server tool blocks: no OpenAI equivalent
        self._blocks[_index(data)] = state

    def _on_delta(self, data: dict, out: list[dict]) -> None:
        state = self._blocks.get(_index(data))
        delta = data.get("delta") or {}
        dtype = delta.get("type")
        if state is None:
            raise malformed()
        if dtype == "text_delta":
            text = delta.get("text") or ""
            if text:
                out.append(self._chunk({"content": text}))
        elif dtype == "input_json_delta":
            piece = delta.get("partial_json") or ""
            if not piece:
                return
            state.has_args = True
            if state.kind == "json":
                out.append(self._chunk({"content": piece}))
            elif state.kind == "tool":
                out.append(self._chunk({"tool_calls": [{"index": state.tool_index, "function": {"arguments": piece}}]}))
        elif dtype == "thinking_delta":
            text = delta.get("thinking") or ""
            if text:
                state.thinking.append(text)
                out.append(self._chunk({"reasoning_content": text}))
        elif dtype == "signature_delta":
            state.signature = delta.get("signature") or ""
        # citations_delta and unknown delta types carry nothing OpenAI clients read

    def _on_block_stop(self, data: dict, out: list[dict]) -> None:
        state = self._blocks.pop(_index(data), None)
        if state is None:
            return
        if state.kind in ("tool", "json") and not state.has_args:
            # No input_json_delta came: the start block's input is the whole input.
            arguments = orjson.dumps(state.input or {}).decode()
            if state.kind == "json":
                out.append(self._chunk({"content": arguments}))
            else:
                out.append(self._chunk({"tool_calls": [{"index": state.tool_index,
                                                        "function": {"arguments": arguments}}]}))
        elif state.kind == "thinking":
            block = {"type": "thinking", "thinking": "".join(state.thinking), "signature": state.signature}
            out.append(self._chunk({"thinking_blocks": [block]}))
        elif state.kind == "redacted":
            out.append(self._chunk({"thinking_blocks": [{"type": "redacted_thinking", "data": state.data}]}))

    # chunk shapes ------------------------------------------------------------------------
    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    def _usage_chunk(self) -> dict:
        return {"id": self._id, "object": "chat.completion.chunk", "created": self._created, "model": self._model,
                "choices": [], "usage": self.usage}


def _index(data: dict) -> int:
    index = data.get("index")
    if not isinstance(index, int):
        raise malformed()
    return index


class MessagesPassthroughDecoder:
    """Relay an Anthropic stream to an Anthropic client byte for byte, accounting on the side.

    ``feed`` returns its input unchanged. ``usage`` is the OpenAI-form usage (updated at
    ``message_start`` and ``message_delta``), ``anthropic_usage`` the merged raw usage.
    An ``error`` event is relayed like any other and recorded in ``error`` (not raised:
    the client already has it in its own format). ``close`` raises ``stream_truncated``
    when the stream ended with neither ``message_stop`` nor an ``error`` event.
    """

    __slots__ = ("_sse", "usage", "anthropic_usage", "done", "error", "stop_reason", "id", "model")

    _WATCHED = frozenset({"message_start", "message_delta", "message_stop", "error"})

    def __init__(self) -> None:
        self._sse = SSEDecoder()
        self.usage: dict | None = None
        self.anthropic_usage: dict = {}
        self.done = False
        self.error: GatewayError | None = None
        self.stop_reason: str | None = None
        self.id: str | None = None
        self.model: str | None = None

    def feed(self, data: bytes) -> bytes:
        for event, payload in self._sse.feed(data):
            if event is not None and event not in self._WATCHED:
                continue  # deltas are relayed without being parsed
            try:
                value = orjson.loads(payload)
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, dict):
                self._inspect(event or value.get("type"), value)
        return data

    def _inspect(self, kind: Any, data: dict) -> None:
        if kind == "message_start":
            message = data.get("message") or {}
            self.id = message.get("id")
            self.model = message.get("model")
            merge_usage(self.anthropic_usage, message.get("usage"))
            self.usage = usage_to_openai(self.anthropic_usage)
        elif kind == "message_delta":
            merge_usage(self.anthropic_usage, data.get("usage"))
            self.usage = usage_to_openai(self.anthropic_usage)
            self.stop_reason = (data.get("delta") or {}).get("stop_reason") or self.stop_reason
        elif kind == "message_stop":
            self.done = True
        elif kind == "error":
            self.error = stream_error(data)

    def close(self) -> bytes:
        if not self.done and self.error is None:
            raise truncated(PROVIDER)
        return b""


def messages_response_usage(data: bytes) -> dict | None:
    """OpenAI-form usage of a non-streaming Messages response relayed unchanged."""
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    usage = body.get("usage") if isinstance(body, dict) else None
    return usage_to_openai(usage) if isinstance(usage, dict) else None
