"""One stored form for both kinds of request: streams assemble into it, streams replay from it."""
from __future__ import annotations

import copy

import orjson
import pytest

from conftest import TRANSCRIPTS
from fastgw.cache.assemble import StreamAssembler
from fastgw.cache.entry import decode_entry, encode_entry
from fastgw.cache.synthesise import PIECE_CHARS, response_chunks
from fastgw.providers.openai_compat import OpenAIStreamDecoder


def decode_transcript(name: str) -> list[dict]:
    decoder = OpenAIStreamDecoder("openai")
    chunks = decoder.feed((TRANSCRIPTS / name).read_bytes())
    decoder.close()
    return chunks


def assemble(endpoint: str, chunks: list[dict]) -> dict:
    assembler = StreamAssembler(endpoint)
    for chunk in chunks:
        assembler.add(copy.deepcopy(chunk))
    return assembler.result()


@pytest.mark.parametrize("stream, response", [
    ("openai-chat-stream.sse", "openai-chat.response.json"),
    ("openai-chat-tools-stream.sse", "openai-chat-tools.response.json"),
])
def test_real_stream_assembles_into_the_non_streamed_response(stream, response):
    expected = orjson.loads((TRANSCRIPTS / response).read_bytes())
    got = assemble("chat.completions", decode_transcript(stream))
    want_choice, got_choice = expected["choices"][0], got["choices"][0]
    assert got_choice["finish_reason"] == want_choice["finish_reason"]
    assert got_choice["message"]["content"] == want_choice["message"]["content"]
    assert got_choice["message"].get("tool_calls") == want_choice["message"].get("tool_calls")
    assert got["usage"]["total_tokens"] == got["usage"]["prompt_tokens"] + got["usage"]["completion_tokens"]
    assert got["object"] == "chat.completion" and got["id"] == expected["id"]


def test_chat_response_replays_as_chunks_in_openai_order_and_round_trips():
    response = orjson.loads((TRANSCRIPTS / "openai-chat.response.json").read_bytes())
    chunks = response_chunks("chat.completions", response)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop" and chunks[-2]["choices"][0]["delta"] == {}
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == response["usage"]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == response["id"] for c in chunks)
    again = assemble("chat.completions", chunks)
    assert again["choices"][0]["message"]["content"] == response["choices"][0]["message"]["content"]
    assert again["usage"] == response["usage"]


def test_tool_calls_and_long_content_replay():
    response = {"id": "x", "created": 1, "model": "m", "object": "chat.completion", "choices": [
        {"index": 0, "finish_reason": "tool_calls", "logprobs": None, "message": {
            "role": "assistant", "content": "a" * (PIECE_CHARS * 2 + 5),
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}},
                           {"id": "c2", "type": "function", "function": {"name": "g", "arguments": "[1]"}}]}},
        {"index": 1, "finish_reason": "length", "logprobs": None, "message": {"role": "assistant", "content": "b"}},
    ]}
    chunks = response_chunks("chat.completions", response)
    content_chunks = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) == 4, "long content is replayed in pieces"
    again = assemble("chat.completions", chunks)
    assert again["choices"][0]["message"]["tool_calls"] == response["choices"][0]["message"]["tool_calls"]
    assert again["choices"][0]["message"]["content"] == response["choices"][0]["message"]["content"]
    assert [c["finish_reason"] for c in again["choices"]] == ["tool_calls", "length"]
    assert again["choices"][1]["message"]["content"] == "b"
    assert "usage" not in again and all(c["choices"] for c in chunks), "no usage: no usage chunk"


def test_text_completion_round_trip():
    response = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m",
                "choices": [{"index": 0, "text": "This is a test.", "logprobs": None, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}}
    chunks = response_chunks("completions", response)
    assert all(c["object"] == "text_completion" for c in chunks)
    assert assemble("completions", chunks) == response


def test_entry_encoding():
    entry = decode_entry(encode_entry("chat.completions", {"id": "x"}))
    assert entry is not None and entry.endpoint == "chat.completions" and entry.response == {"id": "x"}
    assert 0 <= entry.age() < 5
    assert decode_entry(b"not json") is None and decode_entry(b'{"v": 999, "response": {}}') is None
