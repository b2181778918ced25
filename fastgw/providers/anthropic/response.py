"""Anthropic Message -> OpenAI chat.completion (also the shared usage / finish mappings).

Usage: ``prompt_tokens`` = input + cache_read + cache_creation (Anthropic's
``input_tokens`` counts only the uncached part); ``cached_tokens`` = cache_read. The raw
``cache_creation_input_tokens`` / ``cache_read_input_tokens`` (and the 5m/1h split when
given) stay in the usage dict as extra fields because cache writes are priced separately.
"""
from __future__ import annotations

import time
from typing import Any

import orjson

from .request import JSON_TOOL_NAME

FINISH_REASONS: dict[str, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: str | None, has_tool_calls: bool) -> str | None:
    """Anthropic stop_reason -> OpenAI finish_reason (unknown values read as ``stop``)."""
    if stop_reason is None:
        return None
    reason = FINISH_REASONS.get(stop_reason, "stop")
    if reason == "tool_calls" and not has_tool_calls:
        return "stop"  # only the response_format tool was called: the answer is content
    return reason


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def usage_to_openai(usage: dict) -> dict:
    input_tokens = _int(usage.get("input_tokens"))
    cache_read = _int(usage.get("cache_read_input_tokens"))
    cache_creation = _int(usage.get("cache_creation_input_tokens"))
    output_tokens = _int(usage.get("output_tokens"))
    prompt_tokens = input_tokens + cache_read + cache_creation
    out: dict[str, Any] = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": output_tokens,
        "total_tokens": prompt_tokens + output_tokens,
        "prompt_tokens_details": {"cached_tokens": cache_read},
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
    }
    if isinstance(usage.get("cache_creation"), dict):
        out["cache_creation"] = dict(usage["cache_creation"])
    if isinstance(usage.get("server_tool_use"), dict):
        out["server_tool_use"] = dict(usage["server_tool_use"])
    return out


def tool_call(index: int | None, block_id: str, name: str, arguments: str) -> dict:
    call: dict[str, Any] = {"id": block_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    if index is not None:
        call = {"index": index, **call}
    return call


def message_to_openai(message: dict) -> dict:
    """A non-streaming Messages response body -> an OpenAI ``chat.completion``."""
    texts: list[str] = []
    reasoning: list[str] = []
    thinking_blocks: list[dict] = []
    tool_calls: list[dict] = []
    for block in message.get("content") or []:
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text":
            texts.append(block.get("text") or "")
        elif kind == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            if block.get("name") == JSON_TOOL_NAME:
                texts.append(arguments)
            else:
                tool_calls.append(tool_call(None, block.get("id") or "", block.get("name") or "", arguments))
        elif kind == "thinking":
            reasoning.append(block.get("thinking") or "")
            thinking_blocks.append({"type": "thinking", "thinking": block.get("thinking") or "",
                                    "signature": block.get("signature") or ""})
        elif kind == "redacted_thinking":
            thinking_blocks.append({"type": "redacted_thinking", "data": block.get("data") or ""})
        # server tool blocks and citations have no OpenAI equivalent and are left out
    out_message: dict[str, Any] = {
        "role": "assistant",
        "content": "".join(texts) if texts else None,
        "refusal": None,
        "annotations": [],
    }
    if tool_calls:
        out_message["tool_calls"] = tool_calls
    if thinking_blocks:
        out_message["reasoning_content"] = "".join(reasoning)
        out_message["thinking_blocks"] = thinking_blocks
    result: dict[str, Any] = {
        "id": message.get("id") or "",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": message.get("model"),
        "choices": [{
            "index": 0,
            "message": out_message,
            "logprobs": None,
            "finish_reason": finish_reason(message.get("stop_reason"), bool(tool_calls)) or "stop",
        }],
        "usage": usage_to_openai(message.get("usage") or {}),
    }
    return result
