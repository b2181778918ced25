"""Anthropic-format ingress: request/response translation, the SSE encoder (checked with the
official anthropic SDK over an in-memory transport) and error bodies."""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Callable

import anthropic
import httpx2
import orjson
import pytest

from fastgw.config.schema import Deployment, LitellmParams, ModelInfo
from fastgw.errors import GatewayError
from fastgw.ingress.anthropic import (
    MessagesStreamEncoder,
    anthropic_error_body,
    anthropic_error_status,
    messages_to_openai,
    openai_to_messages_response,
    thinking_to_effort,
    validate_messages_request,
)
from fastgw.providers.anthropic import AnthropicProvider, AnthropicStreamDecoder
from fastgw.providers.openai_compat import OpenAIStreamDecoder

TRANSCRIPTS = Path(os.environ.get("FASTGW_TRANSCRIPTS")
                   or Path(__file__).resolve().parents[3] / "shared" / "reference" / "transcripts")
MODEL = "claude-sonnet-4-20250514"
PROVIDER = AnthropicProvider()


def load(name: str) -> dict:
    return orjson.loads((TRANSCRIPTS / name).read_bytes())


def raw(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def dep(model: str = MODEL) -> Deployment:
    return Deployment(id="d1", model_name="claude", provider="anthropic", model=model,
                      params=LitellmParams(model=f"anthropic/{model}", api_key="k"), info=ModelInfo(), extra={})


REQUESTS = ["anthropic-messages.request.json", "anthropic-messages-stream.request.json",
            "anthropic-messages-tools-stream.request.json", "anthropic-messages-tools-followup.request.json",
            "anthropic-messages-thinking-stream.request.json"]


# --------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------
def valid() -> dict:
    return {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize("name", REQUESTS)
def test_transcript_requests_are_valid(name: str) -> None:
    validate_messages_request(load(name))


@pytest.mark.parametrize("change,param", [
    (lambda b: b.pop("model"), "model"),
    (lambda b: b.pop("max_tokens"), "max_tokens"),
    (lambda b: b.pop("messages"), "messages"),
    (lambda b: b.update(model=3), "model"),
    (lambda b: b.update(max_tokens="10"), "max_tokens"),
    (lambda b: b.update(max_tokens=True), "max_tokens"),
    (lambda b: b.update(max_tokens=0), "max_tokens"),
    (lambda b: b.update(messages={"role": "user"}), "messages"),
    (lambda b: b["messages"].append("hi"), "messages.1"),
    (lambda b: b["messages"].append({"content": "x"}), "messages.1.role"),
    (lambda b: b["messages"].append({"role": "system", "content": "x"}), "messages.1.role"),
    (lambda b: b["messages"].append({"role": "user"}), "messages.1.content"),
    (lambda b: b["messages"].append({"role": "user", "content": [{"text": "x"}]}), "messages.1.content.0"),
    (lambda b: b.update(system=5), "system"),
    (lambda b: b.update(stream="yes"), "stream"),
    (lambda b: b.update(temperature="hot"), "temperature"),
    (lambda b: b.update(stop_sequences="x"), "stop_sequences"),
    (lambda b: b.update(tools={}), "tools"),
    (lambda b: b.update(tools=[{"description": "x"}]), "tools.0.name"),
    (lambda b: b.update(tool_choice={"type": "sometimes"}), "tool_choice"),
    (lambda b: b.update(tool_choice={"type": "tool"}), "tool_choice.name"),
    (lambda b: b.update(metadata="u"), "metadata"),
])
def test_validation_names_the_field(change: Callable[[dict], object], param: str) -> None:
    body = valid()
    change(body)
    with pytest.raises(GatewayError) as info:
        validate_messages_request(body)
    assert info.value.status == 400
    assert info.value.param == param
    assert param in info.value.message


def test_validation_rejects_non_objects() -> None:
    with pytest.raises(GatewayError):
        validate_messages_request([1])


# --------------------------------------------------------------------------------------
# request translation
# --------------------------------------------------------------------------------------
def test_messages_request_to_openai() -> None:
    out = messages_to_openai(load("anthropic-messages.request.json"))
    assert out == {
        "model": "claude-sonnet-4-20250514",
        "messages": [{"role": "system", "content": "You are a concise assistant."},
                     {"role": "user", "content": "What is the capital of France?"}],
        "max_completion_tokens": 64,
        "temperature": 0.2,
        "stop": ["\n\nHuman:"],
        "user": "user-1234",
    }


def test_tools_followup_to_openai() -> None:
    out = messages_to_openai(load("anthropic-messages-tools-followup.request.json"))
    assert out["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "Get current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                       "required": ["city"]}}}]
    user, assistant, tool = out["messages"]
    assert user["content"][1]["image_url"]["url"].startswith("data:image/png;base64,iVBORw0KGgo")
    assert assistant == {"role": "assistant", "content": "I'll check the weather in Paris.", "tool_calls": [
        {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}
    assert tool == {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
                    "content": "{\"temp_c\":18,\"sky\":\"clear\"}"}


def test_stream_and_tool_choice_and_thinking_to_openai() -> None:
    out = messages_to_openai(load("anthropic-messages-tools-stream.request.json"))
    assert out["stream"] is True and out["stream_options"] == {"include_usage": True}
    assert out["tool_choice"] == "auto"
    body = dict(valid(), tools=[{"name": "f", "input_schema": {"type": "object"}}])
    for choice, expected in [({"type": "any"}, "required"), ({"type": "none"}, "none"),
                             ({"type": "tool", "name": "f"}, {"type": "function", "function": {"name": "f"}})]:
        assert messages_to_openai(dict(body, tool_choice=choice))["tool_choice"] == expected
    out = messages_to_openai(dict(body, tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert out["parallel_tool_calls"] is False
    out = messages_to_openai(load("anthropic-messages-thinking-stream.request.json"))
    assert out["reasoning_effort"] == "low"
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert "thinking" not in messages_to_openai(load("anthropic-messages-thinking-stream.request.json"),
                                                extensions=False)
    assert [thinking_to_effort({"type": "enabled", "budget_tokens": n}) for n in (1024, 5000, 20000)] == \
        ["low", "medium", "high"]
    assert thinking_to_effort({"type": "disabled"}) is None


def test_blocks_cache_control_thinking_and_errors() -> None:
    ephemeral = {"type": "ephemeral"}
    body = dict(valid(), system=[{"type": "text", "text": "a"}, {"type": "text", "text": "b",
                                                                 "cache_control": ephemeral}],
                top_k=4, messages=[
                    {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": ephemeral}]},
                    {"role": "assistant", "content": [
                        {"type": "thinking", "thinking": "t", "signature": "s"},
                        {"type": "redacted_thinking", "data": "r"},
                        {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {"x": 1}}]},
                    {"role": "user", "content": [
                        {"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True,
                         "content": [{"type": "text", "text": "failed"}]},
                        {"type": "text", "text": "try again"}]},
                ])
    out = messages_to_openai(body)
    assert out["messages"][0] == {"role": "system", "content": [{"type": "text", "text": "a"},
                                                                {"type": "text", "text": "b",
                                                                 "cache_control": ephemeral}]}
    assert out["messages"][1]["content"] == [{"type": "text", "text": "q", "cache_control": ephemeral}]
    assistant = out["messages"][2]
    assert assistant["content"] is None
    assert assistant["reasoning_content"] == "t"
    assert assistant["thinking_blocks"] == [{"type": "thinking", "thinking": "t", "signature": "s"},
                                            {"type": "redacted_thinking", "data": "r"}]
    assert out["messages"][3] == {"role": "tool", "tool_call_id": "toolu_1", "is_error": True,
                                  "content": [{"type": "text", "text": "failed"}]}
    assert out["messages"][4] == {"role": "user", "content": [{"type": "text", "text": "try again"}]}
    assert out["top_k"] == 4
    plain = messages_to_openai(body, extensions=False)
    assert "top_k" not in plain and "thinking_blocks" not in plain["messages"][2]
    assert "is_error" not in plain["messages"][3]
    assert "cache_control" not in orjson.dumps(plain).decode()
    with pytest.raises(GatewayError) as info:
        messages_to_openai(dict(valid(), tools=[{"type": "web_search_20250305", "name": "web_search"}]))
    assert info.value.param == "tools.0.type"


@pytest.mark.parametrize("name", REQUESTS)
def test_round_trip_through_the_anthropic_provider(name: str) -> None:
    """Anthropic request -> OpenAI -> AnthropicProvider request == the original body."""
    original = load(name)
    before = copy.deepcopy(original)
    openai = messages_to_openai(original)
    assert original == before
    request = PROVIDER.chat_request(dep(), openai, bool(original.get("stream")))
    assert orjson.loads(request.body) == original


def test_round_trip_keeps_cache_control_and_thinking() -> None:
    ephemeral = {"type": "ephemeral", "ttl": "1h"}
    original = {
        "model": MODEL, "max_tokens": 4096, "thinking": {"type": "enabled", "budget_tokens": 1500},
        "system": [{"type": "text", "text": "sys", "cache_control": ephemeral}],
        "tools": [{"name": "f", "description": "d", "input_schema": {"type": "object"}, "cache_control": ephemeral}],
        "tool_choice": {"type": "auto", "disable_parallel_tool_use": True},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "q", "cache_control": ephemeral}]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                              {"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok",
                                          "is_error": True, "cache_control": ephemeral}]},
        ],
    }
    request = PROVIDER.chat_request(dep(), messages_to_openai(original), False)
    assert orjson.loads(request.body) == original


# --------------------------------------------------------------------------------------
# the official SDK as the judge
# --------------------------------------------------------------------------------------
def sdk(status: int, body: bytes, content_type: str = "application/json") -> anthropic.Anthropic:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(status, headers={"content-type": content_type, "request-id": "req_test"},
                               content=body)

    http_client = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(api_key="k", base_url="http://gateway.test", max_retries=0, http_client=http_client)


ASK = {"model": "claude-via-gateway", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def sdk_stream(data: bytes) -> anthropic.types.Message:
    with sdk(200, data, "text/event-stream").messages.stream(**ASK) as stream:
        return stream.get_final_message()


def openai_chunks(name: str) -> list[dict]:
    decoder = OpenAIStreamDecoder("openai")
    chunks = decoder.feed(raw(name))
    chunks.extend(decoder.close())
    return chunks


def encode(chunks: list[dict], model: str = MODEL) -> bytes:
    encoder = MessagesStreamEncoder(model)
    return b"".join(encoder.feed(c) for c in chunks) + encoder.finish()


def test_sdk_reassembles_encoded_openai_text_stream() -> None:
    message = sdk_stream(encode(openai_chunks("openai-chat-stream.sse")))
    full = load("openai-chat.response.json")
    assert message.content[0].type == "text"
    assert message.content[0].text == full["choices"][0]["message"]["content"]
    assert message.stop_reason == "end_turn"
    assert message.model == MODEL
    assert message.id.startswith("msg_")
    assert (message.usage.input_tokens, message.usage.output_tokens) == (24, 8)


def test_sdk_reassembles_encoded_openai_tool_stream() -> None:
    message = sdk_stream(encode(openai_chunks("openai-chat-tools-stream.sse")))
    (block,) = message.content
    assert block.type == "tool_use"
    assert block.id == "call_9fQk2LmWn4Xy7Rb1Tz3Vc8Hd"
    assert block.name == "get_weather"
    assert block.input == {"city": "Paris"}
    assert message.stop_reason == "tool_use"


@pytest.mark.parametrize("name", ["anthropic-messages-stream.sse", "anthropic-messages-tools-stream.sse",
                                  "anthropic-messages-thinking-stream.sse"])
def test_anthropic_stream_survives_the_openai_detour(name: str) -> None:
    """Anthropic SSE -> OpenAI chunks (provider) -> Anthropic SSE (encoder): the SDK sees the same message."""
    decoder = AnthropicStreamDecoder()
    chunks = decoder.feed(raw(name)) + decoder.close()
    original = sdk_stream(raw(name))
    relayed = sdk_stream(encode(chunks))
    assert [b.to_dict() for b in relayed.content] == [b.to_dict() for b in original.content]
    assert relayed.id == original.id
    assert relayed.stop_reason == original.stop_reason
    assert relayed.usage.input_tokens == original.usage.input_tokens
    assert relayed.usage.output_tokens == original.usage.output_tokens


def test_encoder_event_sequence_for_thinking_then_text() -> None:
    decoder = AnthropicStreamDecoder()
    chunks = decoder.feed(raw("anthropic-messages-thinking-stream.sse"))
    events = [line[7:] for line in encode(chunks).decode().split("\n") if line.startswith("event: ")]
    assert events == ["message_start", "content_block_start", "content_block_delta", "content_block_delta",
                      "content_block_delta", "content_block_stop", "content_block_start", "content_block_delta",
                      "content_block_stop", "message_delta", "message_stop"]


def test_encoder_edge_cases() -> None:
    # empty stream still yields a well-formed message
    assert sdk_stream(MessagesStreamEncoder(MODEL).finish()).content == []
    # reasoning from a non-Anthropic upstream, refusal text, two sequential tool calls, length stop
    chunks = [
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "hm"}}]},
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"refusal": "no"}}]},
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "id": "call_a", "type": "function", "function": {"name": "a", "arguments": "{\"x\":"}}]}}]},
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 0, "function": {"arguments": "1}"}}]}}]},
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {"tool_calls": [
            {"index": 1, "id": "call_b", "type": "function", "function": {"name": "b", "arguments": "{}"}}]}}]},
        {"id": "chatcmpl-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "length"}]},
        {"id": "chatcmpl-1", "choices": [], "usage": {"prompt_tokens": 100, "completion_tokens": 7,
                                                      "prompt_tokens_details": {"cached_tokens": 60}}},
    ]
    message = sdk_stream(encode(chunks))
    assert [b.type for b in message.content] == ["thinking", "text", "tool_use", "tool_use"]
    assert message.content[0].thinking == "hm" and message.content[1].text == "no"
    assert message.content[2].input == {"x": 1} and message.content[3].input == {}
    assert message.stop_reason == "max_tokens"
    assert (message.usage.input_tokens, message.usage.cache_read_input_tokens, message.usage.output_tokens) == \
        (40, 60, 7)
    assert message.id == "msg_chatcmpl-1"


def test_encoder_error_event_raises_in_the_sdk() -> None:
    decoder = AnthropicStreamDecoder()
    encoder = MessagesStreamEncoder(MODEL)
    out = b""
    with pytest.raises(GatewayError) as info:
        for chunk in decoder.feed(raw("anthropic-messages-stream-error.sse")):
            out += encoder.feed(chunk)
    out += encoder.error(info.value)
    assert out.endswith(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
                        b'"message":"anthropic: Overloaded"}}\n\n')
    with pytest.raises(anthropic.APIStatusError) as sdk_info:
        sdk_stream(out)
    assert sdk_info.value.type == "overloaded_error"
    with pytest.raises(anthropic.APIStatusError) as original:
        sdk_stream(raw("anthropic-messages-stream-error.sse"))
    assert type(sdk_info.value) is type(original.value)


def test_sdk_parses_translated_responses() -> None:
    client = sdk(200, orjson.dumps(openai_to_messages_response(load("openai-chat.response.json"), MODEL)))
    message = client.messages.create(**ASK)
    assert message.content[0].text == "The capital of France is Paris."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (24, 8)

    client = sdk(200, orjson.dumps(openai_to_messages_response(load("openai-chat-tools.response.json"), MODEL)))
    message = client.messages.create(**ASK)
    (block,) = message.content
    assert (block.type, block.id, block.name, block.input) == ("tool_use", "call_9fQk2LmWn4Xy7Rb1Tz3Vc8Hd",
                                                               "get_weather", {"city": "Paris"})
    assert message.stop_reason == "tool_use"


def test_non_streaming_round_trip_through_openai_form() -> None:
    original = sdk(200, raw("anthropic-messages.response.json")).messages.create(**ASK)
    openai = PROVIDER.chat_response(dep(), raw("anthropic-messages.response.json"))
    relayed = sdk(200, orjson.dumps(openai_to_messages_response(openai, MODEL))).messages.create(**ASK)
    assert relayed.id == original.id
    assert [b.to_dict() for b in relayed.content] == [b.to_dict() for b in original.content]
    assert relayed.stop_reason == original.stop_reason
    assert (relayed.usage.input_tokens, relayed.usage.output_tokens) == (21, 10)
    thinking = {"id": "msg_t", "choices": [{"index": 0, "finish_reason": "stop", "message": {
        "role": "assistant", "content": "42", "reasoning_content": "think",
        "thinking_blocks": [{"type": "thinking", "thinking": "think", "signature": "sig"}]}}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "cache_creation_input_tokens": 4,
                  "cache_read_input_tokens": 3, "prompt_tokens_details": {"cached_tokens": 3}}}
    message = sdk(200, orjson.dumps(openai_to_messages_response(thinking, MODEL))).messages.create(**ASK)
    assert message.content[0].type == "thinking" and message.content[0].signature == "sig"
    assert (message.usage.input_tokens, message.usage.cache_creation_input_tokens,
            message.usage.cache_read_input_tokens) == (3, 4, 3)


@pytest.mark.parametrize("err,status,etype,cls", [
    (GatewayError(400, "bad", code="context_length_exceeded"), 400, "invalid_request_error",
     anthropic.BadRequestError),
    (GatewayError(401, "who", "authentication_error"), 401, "authentication_error", anthropic.AuthenticationError),
    (GatewayError(403, "no"), 403, "permission_error", anthropic.PermissionDeniedError),
    (GatewayError(404, "gone"), 404, "not_found_error", anthropic.NotFoundError),
    (GatewayError(413, "big"), 413, "request_too_large", anthropic.APIStatusError),
    (GatewayError(429, "slow", code="rate_limit_exceeded"), 429, "rate_limit_error", anthropic.RateLimitError),
    (GatewayError(500, "oops", code="server_error"), 500, "api_error", anthropic.InternalServerError),
    (GatewayError(503, "busy", code="overloaded"), 529, "overloaded_error", anthropic.InternalServerError),
    (GatewayError(504, "late", code="timeout"), 504, "timeout_error", anthropic.InternalServerError),
    (GatewayError(502, "down", code="connection_error"), 502, "api_error", anthropic.InternalServerError),
])
def test_error_bodies(err: GatewayError, status: int, etype: str, cls: type) -> None:
    assert anthropic_error_status(err) == status
    body = anthropic_error_body(err)
    assert body == {"type": "error", "error": {"type": etype, "message": err.message}}
    with pytest.raises(cls) as info:
        sdk(status, orjson.dumps(body)).messages.create(**ASK)
    assert info.value.status_code == status
    assert info.value.type == etype
