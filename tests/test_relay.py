"""The OpenAI stream path without a network: decoder + encoder under adversarial chunking."""
from __future__ import annotations

import asyncio
import gc
import random
import weakref
from types import SimpleNamespace

import orjson
import pytest

from conftest import TRANSCRIPTS
from fastgw.errors import GatewayError
from fastgw.providers.openai_compat import OpenAIStreamDecoder
from fastgw.auth import Principal
from fastgw.pipeline import Call, OpenStream
from fastgw.relay import RELAY_SLICE, OpenAIChunkEncoder, SSERelayResponse

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


# --- SSERelayResponse: what a large upstream read costs in memory ---------------------------

def _content_event(i: int) -> bytes:
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
             "choices": [{"index": 0, "delta": {"content": f"word{i} "}, "finish_reason": None}]}
    return b"data: " + orjson.dumps(chunk) + b"\n\n"


class _WatchedChunk(dict):
    """A chunk that can be watched by weak reference (plain dicts cannot)."""


class _WatchedDecoder:
    """The OpenAI decoder, recording how many bytes each ``feed`` got and which chunks are alive."""

    def __init__(self) -> None:
        self.inner = OpenAIStreamDecoder("openai")
        self.fed: list[int] = []
        self.refs: list[weakref.ref] = []

    @property
    def usage(self) -> dict | None:
        return self.inner.usage

    def feed(self, data: bytes) -> list:
        self.fed.append(len(data))
        out = [_WatchedChunk(c) for c in self.inner.feed(data)]
        self.refs += [weakref.ref(c) for c in out]
        return out

    def alive(self) -> int:
        return sum(ref() is not None for ref in self.refs)

    def close(self) -> list:
        return self.inner.close()


async def test_a_large_read_is_decoded_in_slices_and_nothing_of_it_outlives_its_write():
    role = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    big = b"".join(_content_event(i) for i in range(300))  # one read, as from a gateway that fell behind
    tail = b"data: [DONE]\n\n"
    assert len(big) > 4 * RELAY_SLICE
    decoder = _WatchedDecoder()
    sent: list[dict] = []
    alive_while_waiting: list[int] = []

    async def rest():
        yield big
        gc.collect()  # only reference counting should matter; this rules cycles out of the count
        alive_while_waiting.append(decoder.alive())
        yield tail

    async def send(message: dict) -> None:
        sent.append(message)

    await _run_relay(decoder, [role], rest(), send)

    assert alive_while_waiting == [0], "chunks of the previous read were still referenced"
    assert max(decoder.fed) <= RELAY_SLICE
    bodies = [m["body"] for m in sent[1:]]
    reference = OpenAIChunkEncoder("client-model", False)
    assert bodies[1] == b"".join(reference.feed(c) for c in OpenAIStreamDecoder("openai").feed(big)), \
        "one write for the whole read, byte for byte what decoding it at once gives"
    assert bodies[-1] == b"data: [DONE]\n\n"


async def test_a_finished_stream_leaves_nothing_for_the_collector():
    """The disconnect watcher is cancelled when the stream ends; a task that ends by the
    cancellation keeps the exception, whose traceback holds the task (a cycle per stream:
    5,000 slow streams grew RSS by ~2 MB/s until a full collection)."""
    role = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}
    watchers: list[weakref.ref] = []

    async def rest():
        yield _content_event(1)
        yield b"data: [DONE]\n\n"

    async def send(message: dict) -> None:
        watchers.extend(weakref.ref(t) for t in asyncio.all_tasks()
                        if t is not asyncio.current_task() and "_DisconnectWatch" in repr(t.get_coro()))

    gc.collect()
    gc.disable()
    try:
        await _run_relay(_WatchedDecoder(), [role], rest(), send)
        for _ in range(5):
            await asyncio.sleep(0)  # the watcher's cancellation runs on the next iterations
        assert watchers, "the relay started no disconnect watcher"
        assert all(ref() is None for ref in watchers), "the watcher task waits for the collector"
    finally:
        gc.enable()


async def _run_relay(decoder, first: list, rest, send) -> SSERelayResponse:  # noqa: ANN001
    async def receive() -> dict:
        await asyncio.Event().wait()  # the client stays connected
        return {"type": "http.disconnect"}

    stream = OpenStream(SimpleNamespace(id="dep"), SimpleNamespace(close=lambda: None), decoder, first, rest, False)
    gw = SimpleNamespace(governance=SimpleNamespace(price=lambda call: None, settle=lambda call: None),
                         usage_log=SimpleNamespace(record=lambda record: None),
                         observer=SimpleNamespace(observe_soon=lambda call: None))
    call = Call(endpoint="chat.completions", body={}, model_group="m", principal=Principal(None, True),
                request_id="req_1", stream=True)
    relay = SSERelayResponse(gw, call, stream, OpenAIChunkEncoder("client-model", False))
    await relay({}, receive, send)
    return relay


async def test_a_read_that_fails_in_a_later_slice_sends_and_counts_none_of_its_chunks():
    good = b"".join(_content_event(i) for i in range(100))
    assert len(good) > 2 * RELAY_SLICE
    sent: list[dict] = []

    async def rest():
        yield _content_event(0)
        yield good + b"data: {not json\n\n"

    async def send(message: dict) -> None:
        sent.append(message)

    relay = await _run_relay(OpenAIStreamDecoder("openai"), [], rest(), send)
    bodies = [m["body"] for m in sent[1:]]
    assert bodies[0].count(b"data: ") == 1  # the first read went out
    assert b"malformed stream event" in bodies[-1] and not sent[-1]["more_body"]
    assert len(bodies) == 2, "nothing of the failed read reached the client"
    assert relay.relayed == 1  # the estimate for a broken stream counts only what was sent
