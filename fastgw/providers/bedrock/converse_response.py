"""Converse response -> OpenAI ``chat.completion``; the stop-reason and usage tables (9.1, 9.2)
are shared with the stream decoder."""
from __future__ import annotations

from typing import Any

import orjson

from ...errors import GatewayError
from ..openai_shapes import assistant_message, choice, completion, finish_error, make_usage, tool_call

PROVIDER = "bedrock"

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "guardrail_intervened": "content_filter",
    "content_filtered": "content_filter",
}
# The model produced something unusable: an upstream failure, worth a retry.
FAILED_STOP_REASONS = frozenset({"malformed_model_output", "malformed_tool_use"})


def finish_reason(stop_reason: Any) -> str:
    """OpenAI ``finish_reason``; raises for the stop reasons that mean the output is broken."""
    if stop_reason in FAILED_STOP_REASONS:
        raise finish_error(PROVIDER, str(stop_reason))
    return FINISH_REASONS.get(stop_reason, "stop")


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def openai_usage(usage: Any) -> dict:
    """Bedrock usage -> OpenAI usage. Cache reads and writes are added to ``prompt_tokens`` (the
    reference's rule for Claude; Bedrock's ``inputTokens`` is taken to exclude them, as
    Anthropic's does). Both cache counts are also kept as top-level fields (LiteLLM's and the
    anthropic provider's names) so cost accounting can price cache writes."""
    usage = usage if isinstance(usage, dict) else {}
    cache_read = _count(usage.get("cacheReadInputTokens"))
    cache_write = _count(usage.get("cacheWriteInputTokens"))
    prompt = _count(usage.get("inputTokens")) + cache_read + cache_write
    output = _count(usage.get("outputTokens"))
    out = make_usage(prompt, output, cached=cache_read)
    out["cache_creation_input_tokens"] = cache_write
    out["cache_read_input_tokens"] = cache_read
    return out


def parse_object(data: bytes) -> dict:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise bad_upstream("body is not a JSON object")
    return value


def bad_upstream(detail: str) -> GatewayError:
    return GatewayError(502, f"{PROVIDER}: unexpected upstream response ({detail})", "api_error", None,
                        "bad_upstream_response", retryable=True)


def chat_completion(data: bytes, *, model: str, response_id: str, created: int) -> dict:
    body = parse_object(data)
    output = body.get("output")
    message = output.get("message") if isinstance(output, dict) else None
    blocks = message.get("content") if isinstance(message, dict) else None
    texts: list[str] = []
    reasoning: list[str] = []
    tool_calls: list[dict] = []
    for block in blocks if isinstance(blocks, list) else []:
        if not isinstance(block, dict):
            continue
        if isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif isinstance(block.get("toolUse"), dict):
            use = block["toolUse"]
            tool_calls.append(tool_call(use.get("toolUseId") or "", use.get("name") or "", use.get("input", {})))
        elif isinstance(block.get("reasoningContent"), dict):
            text = (block["reasoningContent"].get("reasoningText") or {}).get("text")
            if isinstance(text, str):
                reasoning.append(text)
    out_message = assistant_message("".join(texts) if texts else None, reasoning="".join(reasoning) or None,
                                    tool_calls=tool_calls)
    finish = finish_reason(body.get("stopReason"))
    return completion(response_id, model, [choice(0, out_message, finish)], openai_usage(body.get("usage")), created)
