"""The OpenAI stream path without a network: decoder + encoder under adversarial chunking."""
from __future__ import annotations

import random

import orjson
import pytest

from conftest import TRANSCRIPTS
from fastgw.errors import GatewayError
from fastgw.providers.openai_compat import OpenAIStreamDecoder
from fastgw.relay import OpenAIChunkEncoder

STREAM = (TRANSCRIPTS / "openai-chat-stream.sse").read_bytes()


def splits(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.choice([1, 1, 2, 3, 5, 8, 13, 64])
        out.append(data[i : i + n])
        i += n
    return out


def relay(pieces: list[bytes], include_usage: bool) -> tuple[bytes, dict | None]:
    decoder = OpenAIStreamDecoder("openai")
    encoder = OpenAIChunkEncoder("client-model", include_usage)
    out = b"".join(encoder.feed(c) for piece in pieces for c in decoder.feed(piece))
    out += b"".join(encoder.feed(c) for c in decoder.close()) + encoder.finish()
    return out, decoder.usage


def events(body: bytes) -> list[dict]:
    return [orjson.loads(e[6:]) for e in body.split(b"\n\n") if e.startswith(b"data: {")]


@pytest.mark.parametrize("terminator", [b"\n", b"\r\n", b"\r"])
@pytest.mark.parametrize("seed", range(20))
def test_any_chunking_and_line_endings_give_the_same_output(seed, terminator):
    data = STREAM.replace(b"\n", terminator)
    whole, usage = relay([STREAM], include_usage=True)
    split, split_usage = relay(splits(data, seed), include_usage=True)
    assert split == whole and split_usage == usage
    assert whole.endswith(b"data: [DONE]\n\n")
    chunks = events(whole)
    assert all(c["model"] == "client-model" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == \
        "The capital of France is Paris."
    assert usage["total_tokens"] == 32


def test_usage_chunk_hidden_unless_asked():
    body, usage = relay(splits(STREAM, 1), include_usage=False)
    chunks = events(body)
    assert usage is not None, "the gateway still accounts for usage"
    assert all(c["choices"] for c in chunks) and all("usage" not in c for c in chunks)


def test_truncated_stream_raises():
    decoder = OpenAIStreamDecoder("openai")
    decoder.feed(STREAM[: len(STREAM) // 2])
    with pytest.raises(GatewayError) as info:
        decoder.close()
    assert info.value.code == "stream_truncated"


def test_in_band_error_raises():
    data = (TRANSCRIPTS / "openai-chat-stream-midstream-error.sse").read_bytes()
    decoder = OpenAIStreamDecoder("openai")
    with pytest.raises(GatewayError) as info:
        for piece in splits(data, 3):
            decoder.feed(piece)
    assert info.value.status == 500 and "server had an error" in info.value.message


def test_malformed_event_raises():
    decoder = OpenAIStreamDecoder("openai")
    with pytest.raises(GatewayError) as info:
        decoder.feed(b"data: {not json}\n\n")
    assert info.value.code == "malformed_stream"
