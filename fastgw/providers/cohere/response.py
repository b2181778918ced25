"""Cohere v2 chat response -> OpenAI ``chat.completion`` (providers.md 6.3, tables 9.1/9.2).

Usage reports ``usage.tokens`` (what the model processed, Cohere's prompt template
included) rather than ``billed_units``; billed units are used only when ``tokens`` is
missing. ``tool_plan`` is returned as the message text, mirroring the request side.
"""
from __future__ import annotations

from ..openai_compat import parse_json_object
from ..openai_shapes import arguments_text, assistant_message, choice, completion, finish_error, make_usage, new_id

FINISH_REASONS = {
    "COMPLETE": "stop",
    "STOP_SEQUENCE": "stop",
    "MAX_TOKENS": "length",
    "TOOL_CALL": "tool_calls",
}
ERROR_REASONS = frozenset({"ERROR", "TIMEOUT"})


def finish_reason(provider: str, reason: str | None, has_calls: bool, detail: str | None = None) -> str:
    """ERROR/TIMEOUT are failures, not answers: they raise (retryable)."""
    if reason in ERROR_REASONS:
        raise finish_error(provider, reason or "ERROR", detail)
    mapped = FINISH_REASONS.get(reason or "COMPLETE", "stop")
    return "tool_calls" if has_calls and mapped == "stop" else mapped


def usage_from(usage: dict | None) -> dict | None:
    if not isinstance(usage, dict):
        return None
    counts = usage.get("tokens") or usage.get("billed_units") or {}
    prompt = int(counts.get("input_tokens") or 0)
    output = int(counts.get("output_tokens") or 0)
    return make_usage(prompt, output, cached=int(usage.get("cached_tokens") or 0))


def parse_response(provider: str, model: str, data: bytes) -> dict:
    response = parse_json_object(provider, data)
    message = response.get("message") or {}
    texts, thoughts = [], []
    for item in message.get("content") or ():
        if not isinstance(item, dict):
            continue
        if item.get("type") == "thinking":
            thoughts.append(item.get("thinking") or "")
        elif item.get("type") == "text":
            texts.append(item.get("text") or "")
    calls = [
        {"id": c.get("id") or "", "type": "function",
         "function": {"name": (c.get("function") or {}).get("name", ""),
                      "arguments": arguments_text((c.get("function") or {}).get("arguments"))}}
        for c in message.get("tool_calls") or ()
    ]
    text = "".join(texts) or message.get("tool_plan") or (None if calls else "")
    reason = finish_reason(provider, response.get("finish_reason"), bool(calls))
    out_message = assistant_message(text, reasoning="".join(thoughts), tool_calls=calls)
    return completion(response.get("id") or new_id("chatcmpl-"), model, [choice(0, out_message, reason)],
                      usage_from(response.get("usage")))
