"""Cohere v2 chat stream (named SSE events) -> OpenAI chunks (providers.md 6.4).

``message-end`` is the terminator and carries finish reason and usage; a body that ends
without it is truncated. ``tool-call-start`` opens a call (``tool_calls`` is a single
object there), ``tool-call-delta`` appends argument text, ``tool-plan-delta`` is text.
A ``message-end`` with finish reason ERROR/TIMEOUT is an in-band error.
"""
from __future__ import annotations

from ..._core.framing import SSEDecoder
from ..openai_compat import truncated
from ..openai_shapes import ChunkWriter, load_json, new_id
from .response import finish_reason, usage_from


class CohereStreamDecoder:
    __slots__ = ("_sse", "_provider", "_model", "_writer", "usage", "done", "_calls")

    def __init__(self, provider: str, model: str) -> None:
        self._sse = SSEDecoder()
        self._provider = provider
        self._model = model
        self._writer: ChunkWriter | None = None
        self.usage: dict | None = None
        self.done = False
        self._calls: dict[int, int] = {}  # Cohere tool-call index -> OpenAI tool_calls index

    def feed(self, data: bytes) -> list[dict]:
        out: list[dict] = []
        for event, payload in self._sse.feed(data):
            self._on_event(event, payload, out)
        return out

    def close(self) -> list[dict]:
        out: list[dict] = []
        for event, payload in self._sse.close():
            self._on_event(event, payload, out)
        if not self.done:
            raise truncated(self._provider)
        return out

    # ---------------------------------------------------------------------------------
    def _on_event(self, name: str | None, payload: bytes, out: list[dict]) -> None:
        if payload == b"[DONE]" or self.done:
            return
        event = load_json(self._provider, payload)
        if not isinstance(event, dict):
            return
        kind = event.get("type") or name
        writer = self._writer
        if writer is None:
            writer = self._writer = ChunkWriter(event.get("id") or new_id("chatcmpl-"), self._model)
        message = (event.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            out.append(writer.delta(0, {"content": ""}))
        elif kind in ("content-start", "content-delta"):
            content = message.get("content") or {}
            if content.get("thinking"):
                out.append(writer.delta(0, {"reasoning_content": content["thinking"]}))
            if content.get("text"):
                out.append(writer.delta(0, {"content": content["text"]}))
        elif kind == "tool-plan-delta":
            if message.get("tool_plan"):
                out.append(writer.delta(0, {"content": message["tool_plan"]}))
        elif kind == "tool-call-start":
            call = message.get("tool_calls") or {}
            function = call.get("function") or {}
            index = self._calls.setdefault(int(event.get("index") or 0), len(self._calls))
            out.append(writer.delta(0, {"tool_calls": [{
                "index": index, "id": call.get("id") or "", "type": "function",
                "function": {"name": function.get("name", ""), "arguments": function.get("arguments") or ""},
            }]}))
        elif kind == "tool-call-delta":
            piece = ((message.get("tool_calls") or {}).get("function") or {}).get("arguments")
            if piece:
                index = self._calls.get(int(event.get("index") or 0), 0)
                out.append(writer.delta(0, {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}))
        elif kind == "message-end":
            self._on_end(writer, event.get("delta") or {}, out)
        # content-end, tool-call-end, citation-*, debug and unknown events carry nothing to relay

    def _on_end(self, writer: ChunkWriter, delta: dict, out: list[dict]) -> None:
        reason = finish_reason(self._provider, delta.get("finish_reason"), bool(self._calls), delta.get("error"))
        self.done = True
        self.usage = usage_from(delta.get("usage"))
        out.append(writer.delta(0, {}, reason))
        if self.usage is not None:
            out.append(writer.usage(self.usage))
