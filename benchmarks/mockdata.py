"""The fixed upstream answers every benchmark mock serves (nginx, the built-in mock, the slow mock).

``CHAT_JSON`` is an OpenAI ``chat.completion`` (the shape of the reference transcript);
``stream_body(n)`` is an OpenAI SSE stream of ``n`` content chunks, a finish chunk, the
usage chunk (as with ``stream_options.include_usage``) and ``[DONE]``.
"""
from __future__ import annotations

import orjson

UPSTREAM_MODEL = "gpt-4o-mini-2024-07-18"
CHUNK_ID = "chatcmpl-Bx7kQ2mZr9VtLw3NfH8aYc1dE5pG"
USAGE = {"prompt_tokens": 24, "completion_tokens": 100, "total_tokens": 124,
         "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
         "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0,
                                       "rejected_prediction_tokens": 0}}

CHAT_JSON = orjson.dumps({
    "id": CHUNK_ID, "object": "chat.completion", "created": 1735689600, "model": UPSTREAM_MODEL,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "The capital of France is Paris.",
                                         "refusal": None, "annotations": []},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {**USAGE, "completion_tokens": 8, "total_tokens": 32},
    "service_tier": "default", "system_fingerprint": "fp_7a1d3c9e20",
})

WORDS = ("The", " capital", " of", " France", " is", " Paris", ",", " a", " city", " known", " for", " its", " art",
         ".")


def _chunk(delta: dict, finish: str | None = None, usage: dict | None = None, choices: bool = True) -> bytes:
    body = {"id": CHUNK_ID, "object": "chat.completion.chunk", "created": 1735689600, "model": UPSTREAM_MODEL,
            "service_tier": "default", "system_fingerprint": "fp_7a1d3c9e20",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}] if choices else [],
            "usage": usage}
    return b"data: " + orjson.dumps(body) + b"\n\n"


def stream_events(n: int = 100) -> list[bytes]:
    """The SSE events of one stream, one ``bytes`` per event (the slow mock sends them one by one)."""
    events = [_chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [_chunk({"content": WORDS[i % len(WORDS)]}) for i in range(n - 1)]
    events.append(_chunk({}, "stop"))
    events.append(_chunk({}, usage=USAGE, choices=False))
    events.append(b"data: [DONE]\n\n")
    return events


def stream_body(n: int = 100) -> bytes:
    return b"".join(stream_events(n))


def request_body(model: str, stream: bool = False, prompt_chars: int = 60) -> bytes:
    """A typical chat request body (what wrk and the TTFB probe POST)."""
    body: dict = {"model": model, "messages": [
        {"role": "system", "content": "You are a concise assistant."},
        {"role": "user", "content": ("What is the capital of France? " * (prompt_chars // 31 + 1))[:prompt_chars]},
    ], "max_tokens": 64, "temperature": 0.2}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return orjson.dumps(body)
