"""ConverseStream body (AWS binary event-stream) -> OpenAI ``chat.completion.chunk`` dicts.

Framing and CRCs are checked by the compiled ``EventStreamDecoder``; a frame that fails them
ends the stream with ``malformed_stream`` rather than passing on bytes that cannot be trusted.
The stream is complete only after both ``messageStop`` (finish reason) and ``metadata``
(usage, always the last event); anything less at end of body is ``stream_truncated``.

Errors are raised after the chunks of the frames that preceded them: when one ``feed`` holds
good frames and then an exception frame (or a corrupt one), it returns the good frames' chunks
and the next ``feed``/``close`` raises. The client therefore sees the same chunks and the same
error however the socket happened to split the body.
"""
from __future__ import annotations

import orjson

from ..._core.framing import EventStreamDecoder, EventStreamError
from ...errors import GatewayError
from ..openai_shapes import ChunkWriter
from .converse_response import finish_reason, openai_usage
from .errors import malformed_stream, stream_error_frame, stream_exception, truncated_stream


class ConverseStreamDecoder:
    __slots__ = ("_frames", "_out", "_tool_index", "usage", "_stopped", "_finished", "_error")

    def __init__(self, *, model: str, response_id: str, created: int) -> None:
        self._frames = EventStreamDecoder()
        self._out = ChunkWriter(response_id, model, created)
        self._tool_index: dict[int, int] = {}  # contentBlockIndex -> OpenAI tool_calls index
        self.usage: dict | None = None
        self._stopped = False  # messageStop seen
        self._finished = False  # metadata seen
        self._error: GatewayError | None = None  # raised on the next call once set

    @property
    def done(self) -> bool:
        return self._stopped and self._finished

    def feed(self, data: bytes) -> list[dict]:
        if self._error is not None:
            raise self._error
        try:
            messages = self._frames.feed(data)
        except EventStreamError as exc:
            # Frames verified earlier in this same feed are good: deliver them first.
            messages = list(getattr(exc, "messages", None) or [])
            self._error = malformed_stream(str(exc))
        out: list[dict] = []
        for message in messages:
            try:
                chunk = self._on_message(message.headers, message.payload)
            except GatewayError as exc:
                self._error = exc
                break
            if chunk is not None:
                out.append(chunk)
        if self._error is not None and not out:
            raise self._error
        return out

    def close(self) -> list[dict]:
        if self._error is not None:
            raise self._error
        if not self.done or self._frames.pending:
            raise truncated_stream()
        return []

    # --- one frame --------------------------------------------------------------------------

    def _on_message(self, headers: dict, payload: bytes) -> dict | None:
        kind = headers.get(":message-type", "event")
        if kind == "exception":
            raise stream_exception(str(headers.get(":exception-type") or ""), payload)
        if kind == "error":
            raise stream_error_frame(str(headers.get(":error-code") or ""), str(headers.get(":error-message") or ""))
        if kind != "event":
            return None
        event = headers.get(":event-type")
        try:
            body = orjson.loads(payload) if payload else {}
        except orjson.JSONDecodeError:
            raise malformed_stream(f"{event} payload is not JSON") from None
        if not isinstance(body, dict):
            raise malformed_stream(f"{event} payload is not a JSON object")
        if event == "messageStart":
            return self._chunk({"content": ""})
        if event == "contentBlockStart":
            return self._on_block_start(body)
        if event == "contentBlockDelta":
            return self._on_delta(body)
        if event == "messageStop":
            self._stopped = True
            return self._chunk({}, finish_reason(body.get("stopReason")))
        if event == "metadata":
            self._finished = True
            self.usage = openai_usage(body.get("usage"))
            return self._out.usage(self.usage)
        return None  # contentBlockStop and unknown events carry nothing for the client

    def _on_block_start(self, body: dict) -> dict | None:
        start = body.get("start")
        use = start.get("toolUse") if isinstance(start, dict) else None
        if not isinstance(use, dict):
            return None
        index = len(self._tool_index)
        self._tool_index[body.get("contentBlockIndex", index)] = index
        return self._chunk({"tool_calls": [{"index": index, "id": use.get("toolUseId"), "type": "function",
                                            "function": {"name": use.get("name"), "arguments": ""}}]})

    def _on_delta(self, body: dict) -> dict | None:
        delta = body.get("delta")
        if not isinstance(delta, dict):
            return None
        if isinstance(delta.get("text"), str):
            return self._chunk({"content": delta["text"]})
        use = delta.get("toolUse")
        if isinstance(use, dict):
            block = body.get("contentBlockIndex")
            if block not in self._tool_index:
                raise malformed_stream("toolUse delta for a block that never started")
            piece = use.get("input") or ""
            if not isinstance(piece, str):
                piece = orjson.dumps(piece).decode()
            return self._chunk({"tool_calls": [{"index": self._tool_index[block], "function": {"arguments": piece}}]})
        reasoning = delta.get("reasoningContent")
        if isinstance(reasoning, dict) and isinstance(reasoning.get("text"), str):
            return self._chunk({"reasoning_content": reasoning["text"]})
        return None  # reasoning signatures, redacted reasoning and citations have no OpenAI field

    def _chunk(self, delta: dict, finish: str | None = None) -> dict:
        return self._out.delta(0, delta, finish)
