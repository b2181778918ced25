"""The stream encoder wrapper: clean ends are kept, errors are not, chunks pass untouched."""
from __future__ import annotations

from fastgw.cache.assemble import StreamAssembler
from fastgw.cache.serve import CapturingEncoder
from fastgw.errors import GatewayError
from fastgw.relay import OpenAIChunkEncoder

CHUNKS = [
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "up",
     "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "up",
     "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "up",
     "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
    {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "up", "choices": [],
     "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}},
]


def run(ending: str) -> tuple[bytes, list[dict]]:
    kept: list[dict] = []
    annotate = lambda usage: usage.update(cost=0.5)  # noqa: E731 - what governance does to the client's copy
    plain = OpenAIChunkEncoder("group", True, annotate)
    wrapped = CapturingEncoder(OpenAIChunkEncoder("group", True, annotate), StreamAssembler("chat.completions"),
                               kept.append)
    out = b"".join(wrapped.feed(dict(c, choices=[dict(x) for x in c["choices"]], usage=dict(c["usage"]))
                                if "usage" in c else dict(c)) for c in CHUNKS)
    expected = b"".join(plain.feed(dict(c, usage=dict(c["usage"])) if "usage" in c else dict(c)) for c in CHUNKS)
    assert out == expected, "the client sees exactly what it would without the wrapper"
    if ending == "finish":
        wrapped.finish()
    else:
        wrapped.error(GatewayError(502, "broken", code="stream_truncated"))
    return out, kept


def test_clean_end_is_kept_without_the_clients_annotations():
    _, kept = run("finish")
    assert len(kept) == 1
    response = kept[0]
    assert response["choices"][0]["message"]["content"] == "Hi" and response["model"] == "up"
    assert response["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}


def test_error_end_is_not_kept():
    _, kept = run("error")
    assert kept == []


def test_a_failing_keeper_never_breaks_the_stream():
    def boom(response: dict) -> None:
        raise RuntimeError("no")

    wrapped = CapturingEncoder(OpenAIChunkEncoder("g", False), StreamAssembler("chat.completions"), boom)
    assert wrapped.finish() == b"data: [DONE]\n\n"
