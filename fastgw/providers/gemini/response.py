"""Gemini ``GenerateContentResponse`` -> OpenAI ``chat.completion``.

Shared with the stream decoder: every stream event is a complete response holding only
the new parts, so the same part, finish-reason and usage mapping applies to both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from ..openai_compat import parse_json_object
from ..openai_shapes import assistant_message, choice, completion, finish_error, make_usage, new_id, tool_call
from .signatures import encode_call_id

_CONTENT_FILTER = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION", "MODEL_ARMOR",
})


@dataclass(slots=True)
class CandidateParts:
    """What one candidate (or one stream event of it) carried, already split by kind."""

    text: str = ""
    reasoning: str = ""
    calls: list[dict] = field(default_factory=list)  # OpenAI tool_call dicts (ids made here)


def candidate_parts(candidate: dict) -> CandidateParts:
    out = CandidateParts()
    texts, thoughts = [], []
    for part in (candidate.get("content") or {}).get("parts") or ():
        if not isinstance(part, dict):
            continue
        if "functionCall" in part:
            call = part["functionCall"] or {}
            call_id = encode_call_id(call.get("id"), part.get("thoughtSignature"))
            out.calls.append(tool_call(call_id, call.get("name", ""), call.get("args") or {}))
        elif isinstance(part.get("text"), str):
            (thoughts if part.get("thought") else texts).append(part["text"])
    out.text = "".join(texts)
    out.reasoning = "".join(thoughts)
    return out


def finish_reason(provider: str, reason: str, has_calls: bool, produced: bool) -> str:
    """Table 9.2. Reasons that mean "generation failed" raise when the candidate produced
    nothing (there is no answer to return); after output they end the answer as ``stop``."""
    if reason == "STOP":
        return "tool_calls" if has_calls else "stop"
    if reason == "MAX_TOKENS":
        return "length"
    if reason in _CONTENT_FILTER:
        return "content_filter"
    if has_calls:
        return "tool_calls"
    if produced:
        return "stop"
    raise finish_error(provider, reason)


def usage_from(metadata: dict | None) -> dict | None:
    """Table 9.1: thoughts count as completion tokens (and as reasoning_tokens)."""
    if not metadata:
        return None
    prompt = int(metadata.get("promptTokenCount") or 0) + int(metadata.get("toolUsePromptTokenCount") or 0)
    thoughts = int(metadata.get("thoughtsTokenCount") or 0)
    output = int(metadata.get("candidatesTokenCount") or 0) + thoughts
    return make_usage(prompt, output, cached=int(metadata.get("cachedContentTokenCount") or 0), reasoning=thoughts)


def logprobs_from(candidate: dict) -> dict | None:
    """``logprobsResult`` (chosen + top candidates per step) -> OpenAI ``logprobs.content``."""
    result = candidate.get("logprobsResult")
    if not isinstance(result, dict):
        return None
    tops = result.get("topCandidates") or []
    content = []
    for step, chosen in enumerate(result.get("chosenCandidates") or ()):
        top = tops[step].get("candidates", []) if step < len(tops) and isinstance(tops[step], dict) else []
        entry = _logprob(chosen)
        entry["top_logprobs"] = [_logprob(t) for t in top]
        content.append(entry)
    return {"content": content, "refusal": None}


def _logprob(candidate: dict) -> dict:
    token = str(candidate.get("token", ""))
    return {"token": token, "logprob": float(candidate.get("logProbability", 0.0)), "bytes": list(token.encode())}


def blocked(response: dict) -> str | None:
    """``promptFeedback.blockReason`` of a 200 answer that has no candidates."""
    if response.get("candidates"):
        return None
    return (response.get("promptFeedback") or {}).get("blockReason") or "OTHER"


def parse_response(provider: str, model: str, data: bytes) -> dict:
    response = parse_json_object(provider, data)
    response_id = response.get("responseId") or new_id("chatcmpl-")
    model_name = response.get("modelVersion") or model
    usage = usage_from(response.get("usageMetadata"))
    if blocked(response):
        message = assistant_message(None)
        return completion(response_id, model_name, [choice(0, message, "content_filter")], usage)
    choices = []
    for position, candidate in enumerate(response["candidates"]):
        parts = candidate_parts(candidate)
        produced = bool(parts.text or parts.reasoning or parts.calls)
        reason = finish_reason(provider, candidate.get("finishReason") or "STOP", bool(parts.calls), produced)
        message = assistant_message(parts.text or (None if parts.calls else ""), reasoning=parts.reasoning,
                                    tool_calls=parts.calls)
        choices.append(choice(candidate_index(candidate, position), message, reason, logprobs_from(candidate)))
    return completion(response_id, model_name, choices, usage)


def candidate_index(candidate: dict, position: int) -> int:
    index = candidate.get("index")
    return index if isinstance(index, int) else position
