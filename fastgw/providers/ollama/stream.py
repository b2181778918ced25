"""Ollama ``/api/chat`` NDJSON stream -> OpenAI chunks (providers.md 7.3).

One JSON object per line; the line with ``done: true`` is the terminator and carries the
counters. A ``{"error": ...}`` line is an in-band failure; a body that ends without the
``done`` line is truncated.
"""
from __future__ import annotations

from ..._core.framing import NDJSONDecoder
from ..openai_compat import truncated
from ..openai_shapes import ChunkWriter, load_json, new_id
from .errors import stream_error
from .response import created_from, finish_reason, tool_calls_from, usage_from


class OllamaStreamDecoder:
    __slots__ = ("_lines", "_provider", "_model", "_writer", "usage", "done", "_calls")

    def __init__(self, provider: str, model: str) -> None:
        self._lines = NDJSONDecoder()
        self._provider = provider
        self._model = model
        self._writer: ChunkWriter | None = None
        self.usage: dict | None = None
        self.done = False
        self._calls = 0

    def feed(self, data: bytes) -> list[dict]:
        out: list[dict] = []
        for line in self._lines.feed(data):
            self._on_line(line, out)
        return out

    def close(self) -> list[dict]:
        out: list[dict] = []
        for line in self._lines.close():
            self._on_line(line, out)
        if not self.done:
            raise truncated(self._provider)
        return out

    def _on_line(self, raw: bytes, out: list[dict]) -> None:
        if self.done or not raw.strip():
            return
        line = load_json(self._provider, raw)
        if not isinstance(line, dict):
            return
        if line.get("error") is not None:
            raise stream_error(self._provider, line["error"])
        writer = self._writer
        if writer is None:
            writer = self._writer = ChunkWriter(new_id("chatcmpl-"), line.get("model") or self._model,
                                                created_from(line))
        message = line.get("message") or {}
        delta: dict = {}
        if message.get("thinking"):
            delta["reasoning_content"] = message["thinking"]
        if message.get("content"):
            delta["content"] = message["content"]
        calls = tool_calls_from(message)
        if calls:
            delta["tool_calls"] = [{"index": self._calls + i, **call} for i, call in enumerate(calls)]
            self._calls += len(calls)
        if delta or not line.get("done"):
            out.append(writer.delta(0, delta))
        if line.get("done"):
            self.done = True
            self.usage = usage_from(line)
            out.append(writer.delta(0, {}, finish_reason(line.get("done_reason"), self._calls > 0)))
            out.append(writer.usage(self.usage))
