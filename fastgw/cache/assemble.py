"""Turn a completed stream's chunks into the response a non-streamed request gets.

Fed chunk by chunk as the relay sends them; ``result()`` is read only after the stream
ended cleanly. Handles chat (content, refusal, tool calls, logprobs) and text
completions, any number of choices.
"""
from __future__ import annotations

from typing import Any


class _Choice:
    __slots__ = ("index", "role", "content", "refusal", "tool_calls", "finish_reason", "logprobs", "text")

    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.content: list[str] = []
        self.refusal: list[str] = []
        self.text: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason: str | None = None
        self.logprobs: dict[str, list] | None = None


class StreamAssembler:
    """Accumulates ``chat.completion.chunk`` or streamed ``text_completion`` dicts."""

    __slots__ = ("endpoint", "_choices", "_meta", "usage")

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._choices: dict[int, _Choice] = {}
        self._meta: dict[str, Any] = {}
        self.usage: dict | None = None

    def add(self, chunk: dict) -> None:
        for field in ("id", "created", "model", "system_fingerprint", "service_tier"):
            if chunk.get(field) is not None and field not in self._meta:
                self._meta[field] = chunk[field]
        usage = chunk.get("usage")
        if usage:
            self.usage = dict(usage)  # a copy: encoders downstream annotate the client's usage chunk
        for raw in chunk.get("choices") or ():
            if isinstance(raw, dict):
                self._add_choice(raw)

    def _add_choice(self, raw: dict) -> None:
        index = int(raw.get("index") or 0)
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice(index)
        if raw.get("finish_reason"):
            choice.finish_reason = raw["finish_reason"]
        logprobs = raw.get("logprobs")
        if isinstance(logprobs, dict):
            merged = choice.logprobs if choice.logprobs is not None else {}
            for name, items in logprobs.items():
                if isinstance(items, list):
                    merged.setdefault(name, []).extend(items)
            choice.logprobs = merged
        if self.endpoint == "completions":
            if isinstance(raw.get("text"), str):
                choice.text.append(raw["text"])
            return
        delta = raw.get("delta") or {}
        if delta.get("role"):
            choice.role = delta["role"]
        if isinstance(delta.get("content"), str):
            choice.content.append(delta["content"])
        if isinstance(delta.get("refusal"), str):
            choice.refusal.append(delta["refusal"])
        for call in delta.get("tool_calls") or ():
            _merge_tool_call(choice.tool_calls, call)

    def result(self) -> dict:
        choices = [self._choices[i] for i in sorted(self._choices)]
        if self.endpoint == "completions":
            out_choices = [{"index": c.index, "text": "".join(c.text), "logprobs": c.logprobs,
                            "finish_reason": c.finish_reason} for c in choices]
            obj = "text_completion"
        else:
            out_choices = [_chat_choice(c) for c in choices]
            obj = "chat.completion"
        response: dict[str, Any] = {"id": self._meta.get("id"), "object": obj, "created": self._meta.get("created"),
                                    "model": self._meta.get("model"), "choices": out_choices}
        for field in ("system_fingerprint", "service_tier"):
            if field in self._meta:
                response[field] = self._meta[field]
        if self.usage is not None:
            response["usage"] = self.usage
        return response


def _merge_tool_call(calls: dict[int, dict[str, Any]], delta: Any) -> None:
    if not isinstance(delta, dict):
        return
    index = int(delta.get("index") or 0)
    call = calls.get(index)
    if call is None:
        call = calls[index] = {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
    if delta.get("id"):
        call["id"] = delta["id"]
    if delta.get("type"):
        call["type"] = delta["type"]
    function = delta.get("function") or {}
    if function.get("name"):
        call["function"]["name"] += function["name"]
    if isinstance(function.get("arguments"), str):
        call["function"]["arguments"] += function["arguments"]


def _chat_choice(choice: _Choice) -> dict:
    content = "".join(choice.content)
    message: dict[str, Any] = {"role": choice.role,
                               "content": content if (content or not choice.tool_calls) else None}
    if choice.refusal:
        message["refusal"] = "".join(choice.refusal)
    if choice.tool_calls:
        message["tool_calls"] = [choice.tool_calls[i] for i in sorted(choice.tool_calls)]
    return {"index": choice.index, "message": message, "logprobs": choice.logprobs,
            "finish_reason": choice.finish_reason}
