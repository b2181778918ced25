"""``streamGenerateContent?alt=sse`` -> OpenAI chunks.

Each SSE event (CRLF framed, no event names) is a complete GenerateContentResponse
holding only new parts; ``usageMetadata`` is cumulative, so the last one wins and is sent
as the trailing usage chunk when the body ends. There is no ``[DONE]``: the stream is
complete once every candidate has carried a ``finishReason`` (or the prompt was blocked),
and a body that ends before that is truncated.
"""
from __future__ import annotations

from ..._core.framing import SSEDecoder
from ..openai_compat import truncated
from ..openai_shapes import ChunkWriter, load_json, new_id
from .errors import stream_error
from .response import candidate_index, candidate_parts, finish_reason, logprobs_from, usage_from


class GeminiStreamDecoder:
    __slots__ = ("_sse", "_provider", "_model", "_writer", "usage", "_seen", "_finished", "_produced",
                 "_calls", "_blocked")

    def __init__(self, provider: str, model: str) -> None:
        self._sse = SSEDecoder()
        self._provider = provider
        self._model = model
        self._writer: ChunkWriter | None = None
        self.usage: dict | None = None
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._produced: set[int] = set()
        self._calls: dict[int, int] = {}  # tool calls emitted so far, per candidate (OpenAI index)
        self._blocked = False

    def feed(self, data: bytes) -> list[dict]:
        out: list[dict] = []
        for _event, payload in self._sse.feed(data):
            self._on_event(payload, out)
        return out

    def close(self) -> list[dict]:
        out: list[dict] = []
        for _event, payload in self._sse.close():
            self._on_event(payload, out)
        if not (self._blocked or (self._seen and self._seen <= self._finished)):
            raise truncated(self._provider)
        if self.usage is not None and self._writer is not None:
            out.append(self._writer.usage(self.usage))
        return out

    # ---------------------------------------------------------------------------------
    def _on_event(self, payload: bytes, out: list[dict]) -> None:
        event = load_json(self._provider, payload)
        if not isinstance(event, dict):
            return
        if isinstance(event.get("error"), dict):
            raise stream_error(self._provider, event["error"])
        writer = self._writer
        if writer is None:
            writer = self._writer = ChunkWriter(event.get("responseId") or new_id("chatcmpl-"),
                                                event.get("modelVersion") or self._model)
        usage = usage_from(event.get("usageMetadata"))
        if usage is not None:
            self.usage = usage
        candidates = event.get("candidates")
        if not candidates:
            # A blocked prompt: no candidates, promptFeedback.blockReason set. (An event with
            # neither only updates usage.)
            if (event.get("promptFeedback") or {}).get("blockReason") and not self._seen and not self._blocked:
                self._blocked = True
                out.append(writer.delta(0, {}, "content_filter"))
            return
        for position, candidate in enumerate(candidates):
            self._on_candidate(writer, candidate_index(candidate, position), candidate, out)

    def _on_candidate(self, writer: ChunkWriter, index: int, candidate: dict, out: list[dict]) -> None:
        first = index not in self._seen
        self._seen.add(index)
        parts = candidate_parts(candidate)
        delta: dict = {}
        if parts.reasoning:
            delta["reasoning_content"] = parts.reasoning
        if parts.text:
            delta["content"] = parts.text
        if parts.calls:
            start = self._calls.get(index, 0)
            delta["tool_calls"] = [{"index": start + i, **call} for i, call in enumerate(parts.calls)]
            self._calls[index] = start + len(parts.calls)
        if delta:
            self._produced.add(index)
        logprobs = logprobs_from(candidate)
        if delta or first or logprobs:
            out.append(writer.delta(index, delta, logprobs=logprobs))
        reason = candidate.get("finishReason")
        if reason and index not in self._finished:
            self._finished.add(index)
            mapped = finish_reason(self._provider, reason, self._calls.get(index, 0) > 0, index in self._produced)
            out.append(writer.delta(index, {}, mapped))
