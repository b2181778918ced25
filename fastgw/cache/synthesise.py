"""Replay a stored (non-streamed) response as the chunks a streamed request gets.

OpenAI's order for each choice: a role chunk, content (or tool-call) chunks, a finish
chunk; then one usage chunk (choices empty). The relay's encoder drops the usage chunk
when the client did not ask for it, exactly as for a live stream.
"""
from __future__ import annotations

from typing import Any, Iterator

PIECE_CHARS = 256  # content is replayed in pieces of at most this many characters


def response_chunks(endpoint: str, response: dict) -> list[dict]:
    base: dict[str, Any] = {"id": response.get("id"), "created": response.get("created"),
                            "model": response.get("model")}
    if response.get("system_fingerprint") is not None:
        base["system_fingerprint"] = response["system_fingerprint"]
    if endpoint == "completions":
        base["object"] = "text_completion"
        chunks = [c for choice in response.get("choices") or () for c in _text_choice(base, choice)]
    else:
        base["object"] = "chat.completion.chunk"
        chunks = [c for choice in response.get("choices") or () for c in _chat_choice(base, choice)]
    if response.get("usage"):
        chunks.append({**base, "choices": [], "usage": response["usage"]})
    return chunks


def _pieces(text: str) -> Iterator[str]:
    for start in range(0, len(text), PIECE_CHARS):
        yield text[start:start + PIECE_CHARS]


def _chat_choice(base: dict, choice: dict) -> Iterator[dict]:
    index = choice.get("index") or 0
    message = choice.get("message") or {}

    def chunk(delta: dict, finish_reason: str | None = None, logprobs: Any = None) -> dict:
        return {**base, "choices": [{"index": index, "delta": delta, "logprobs": logprobs,
                                     "finish_reason": finish_reason}]}

    yield chunk({"role": message.get("role") or "assistant", "content": ""})
    logprobs = choice.get("logprobs")
    for piece in _pieces(message.get("content") or ""):
        yield chunk({"content": piece}, logprobs=logprobs)
        logprobs = None
    if message.get("refusal"):
        yield chunk({"refusal": message["refusal"]})
    for position, call in enumerate(message.get("tool_calls") or ()):
        function = call.get("function") or {}
        yield chunk({"tool_calls": [{"index": position, "id": call.get("id"), "type": call.get("type") or "function",
                                     "function": {"name": function.get("name"),
                                                  "arguments": function.get("arguments") or ""}}]})
    yield chunk({}, choice.get("finish_reason") or "stop", logprobs)


def _text_choice(base: dict, choice: dict) -> Iterator[dict]:
    index = choice.get("index") or 0
    for piece in _pieces(choice.get("text") or ""):
        yield {**base, "choices": [{"index": index, "text": piece, "logprobs": None, "finish_reason": None}]}
    yield {**base, "choices": [{"index": index, "text": "", "logprobs": choice.get("logprobs"),
                                "finish_reason": choice.get("finish_reason") or "stop"}]}
