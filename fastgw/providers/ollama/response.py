"""Ollama ``/api/chat`` answers -> OpenAI shapes (providers.md 7.3, tables 9.1/9.2).

Tool calls carry arguments as an object and no id: the arguments are serialised and an
id is generated. ``done_reason`` stays ``stop`` when the model called tools, so the
finish reason is derived from the message. Missing counters count as 0.
"""
from __future__ import annotations

import re
import time
from datetime import datetime

from ..openai_compat import parse_json_object
from ..openai_shapes import assistant_message, choice, completion, make_usage, new_id, tool_call, tool_call_id

_FRACTION = re.compile(r"(\.\d{6})\d+")


def tool_calls_from(message: dict) -> list[dict]:
    calls = []
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        calls.append(tool_call(call.get("id") or tool_call_id(), function.get("name", ""), function.get("arguments")))
    return calls


def finish_reason(done_reason: str | None, has_calls: bool) -> str:
    if done_reason == "length":
        return "length"
    return "tool_calls" if has_calls else "stop"


def usage_from(line: dict) -> dict:
    return make_usage(int(line.get("prompt_eval_count") or 0), int(line.get("eval_count") or 0))


def created_from(line: dict) -> int:
    """``created_at`` (RFC 3339, up to nanoseconds) as Unix seconds; now if unparsable."""
    value = line.get("created_at")
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00"))).timestamp())
        except ValueError:
            pass
    return int(time.time())


def parse_response(provider: str, model: str, data: bytes) -> dict:
    line = parse_json_object(provider, data)
    message = line.get("message") or {}
    calls = tool_calls_from(message)
    content = message.get("content") or (None if calls else "")
    out_message = assistant_message(content, reasoning=message.get("thinking"), tool_calls=calls)
    reason = finish_reason(line.get("done_reason"), bool(calls))
    return completion(new_id("chatcmpl-"), line.get("model") or model, [choice(0, out_message, reason)],
                      usage_from(line), created_from(line))
