"""AnthropicProvider against the anthropic-* transcripts: requests, responses, streams, errors."""
from __future__ import annotations

import copy
import logging
import random
import sys
from pathlib import Path

import orjson
import pytest

from fastgw.config.schema import Deployment, LitellmParams, ModelInfo
from fastgw.errors import GatewayError
from fastgw.providers import PROVIDERS, create_provider
from fastgw.providers.anthropic import (
    JSON_TOOL_NAME,
    THINKING_BUDGETS,
    AnthropicProvider,
    AnthropicStreamDecoder,
    MessagesPassthroughDecoder,
    messages_response_usage,
)

MOCKS = Path(__file__).resolve().parents[1] / "mocks"
if str(MOCKS) not in sys.path:
    sys.path.insert(0, str(MOCKS))

from common import TRANSCRIPTS, http_transcript  # noqa: E402

MODEL = "claude-sonnet-4-20250514"


def load(name: str) -> dict:
    return orjson.loads((TRANSCRIPTS / name).read_bytes())


def raw(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def dep(model: str = MODEL, *, extra: dict | None = None, drop_params: bool = False, info: dict | None = None,
        **params: object) -> Deployment:
    params.setdefault("api_key", "sk-ant-test")
    return Deployment(id="d1", model_name="claude", provider="anthropic", model=model,
                      params=LitellmParams(model=f"anthropic/{model}", **params), info=ModelInfo(**(info or {})),
                      extra=extra or {}, drop_params=drop_params)


PROVIDER = AnthropicProvider()


def body_of(openai: dict, d: Deployment | None = None, stream: bool = False) -> dict:
    request = PROVIDER.chat_request(d or dep(), openai, stream)
    return orjson.loads(request.body)


def user(text: str) -> dict:
    return {"role": "user", "content": text}


# --------------------------------------------------------------------------------------
# registry, URL, headers
# --------------------------------------------------------------------------------------
def test_registered() -> None:
    assert PROVIDERS["anthropic"] is AnthropicProvider
    assert isinstance(create_provider("anthropic"), AnthropicProvider)


@pytest.mark.parametrize("base,url", [
    (None, "https://api.anthropic.com/v1/messages"),
    ("http://127.0.0.1:9000", "http://127.0.0.1:9000/v1/messages"),
    ("http://127.0.0.1:9000/", "http://127.0.0.1:9000/v1/messages"),
    ("https://proxy.example/v1", "https://proxy.example/v1/messages"),
    ("https://proxy.example/v1/messages", "https://proxy.example/v1/messages"),
])
def test_url(base: str | None, url: str) -> None:
    request = PROVIDER.chat_request(dep(api_base=base), {"messages": [user("hi")]}, False)
    assert request.method == "POST"
    assert request.url == url


def test_headers() -> None:
    request = PROVIDER.chat_request(dep(extra={"extra_headers": {"anthropic-beta": "b1"}}),
                                    {"messages": [user("hi")]}, False)
    assert request.headers["x-api-key"] == "sk-ant-test"
    assert request.headers["anthropic-version"] == "2023-06-01"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["anthropic-beta"] == "b1"
    assert "authorization" not in request.headers
    assert "extra_headers" not in orjson.loads(request.body)


# --------------------------------------------------------------------------------------
# requests: the OpenAI request each transcript corresponds to
# --------------------------------------------------------------------------------------
def test_request_matches_messages_transcript() -> None:
    openai = {
        "model": "claude",
        "messages": [{"role": "system", "content": "You are a concise assistant."},
                     user("What is the capital of France?")],
        "max_tokens": 64,
        "temperature": 0.2,
        "stop": "\n\nHuman:",
        "user": "user-1234",
    }
    assert body_of(openai) == load("anthropic-messages.request.json")


def test_request_matches_stream_transcript() -> None:
    openai = {
        "model": "claude", "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 64,
        "messages": [{"role": "developer", "content": "You are a concise assistant."},
                     user("What is the capital of France?")],
    }
    assert body_of(openai, stream=True) == load("anthropic-messages-stream.request.json")


WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
                   "required": ["city"]}}}


def test_request_matches_tools_stream_transcript() -> None:
    openai = {"model": "claude", "max_tokens": 256, "stream": True, "tools": [WEATHER_TOOL], "tool_choice": "auto",
              "messages": [user("What's the weather in Paris?")]}
    assert body_of(openai, stream=True) == load("anthropic-messages-tools-stream.request.json")


PIXEL = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")


def test_request_matches_tools_followup_transcript() -> None:
    openai = {
        "model": "claude", "max_tokens": 256, "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What's the weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}", "detail": "low"}}]},
            {"role": "assistant", "content": "I'll check the weather in Paris.", "tool_calls": [
                {"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9",
             "content": "{\"temp_c\":18,\"sky\":\"clear\"}"},
        ],
    }
    assert body_of(openai) == load("anthropic-messages-tools-followup.request.json")


def test_request_matches_thinking_transcript() -> None:
    openai = {"model": "claude", "max_tokens": 4096, "stream": True,
              "thinking": {"type": "enabled", "budget_tokens": 2048}, "messages": [user("What is 27 * 453?")]}
    assert body_of(openai, stream=True) == load("anthropic-messages-thinking-stream.request.json")


def test_multimodal_json_request_mapping() -> None:
    body = body_of(load("openai-chat-multimodal-json.request.json"))
    assert body["system"] == "Answer in JSON."
    assert body["max_tokens"] == 200
    first, second, third = body["messages"]
    assert first["content"][1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png",
                                                               "data": PIXEL}}
    assert second == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "call_9fQk2LmWn4Xy7Rb1Tz3Vc8Hd", "name": "get_weather", "input": {"city": "Paris"}}]}
    assert third == {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_9fQk2LmWn4Xy7Rb1Tz3Vc8Hd",
                                                  "content": "{\"temp_c\":18,\"sky\":\"clear\"}"}]}
    names = [t["name"] for t in body["tools"]]
    assert names == ["get_weather", JSON_TOOL_NAME]
    assert body["tools"][1]["input_schema"]["required"] == ["description", "temp_c"]
    assert body["tools"][0]["input_schema"]["properties"]["city"]["type"] == "string"
    # client tools + JSON format: the model must call a tool; parallel_tool_calls false carried over
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "n" not in body


def test_json_object_alone_forces_the_json_tool() -> None:
    body = body_of({"messages": [user("json please")], "response_format": {"type": "json_object"}})
    assert body["tools"] == [{"name": JSON_TOOL_NAME, "description": body["tools"][0]["description"],
                              "input_schema": {"type": "object"}}]
    assert body["tool_choice"] == {"type": "tool", "name": JSON_TOOL_NAME}
    assert "tools" not in body_of({"messages": [user("x")], "response_format": {"type": "text"}})


def test_reserved_json_tool_name() -> None:
    tool = {"type": "function", "function": {"name": JSON_TOOL_NAME, "parameters": {"type": "object"}}}
    with pytest.raises(GatewayError) as info:
        body_of({"messages": [user("x")], "tools": [tool], "response_format": {"type": "json_object"}})
    assert info.value.status == 400


# --------------------------------------------------------------------------------------
# requests: individual fields
# --------------------------------------------------------------------------------------
def test_max_tokens_defaults() -> None:
    assert body_of({"messages": [user("x")]})["max_tokens"] == 8192
    assert body_of({"messages": [user("x")]}, dep("claude-3-haiku-20240307"))["max_tokens"] == 4096
    assert body_of({"messages": [user("x")]}, dep("claude-3-5-haiku-20241022"))["max_tokens"] == 8192
    assert body_of({"messages": [user("x")]}, dep("some-compatible-model"))["max_tokens"] == 4096
    assert body_of({"messages": [user("x")]}, dep(info={"max_output_tokens": 2000}))["max_tokens"] == 2000
    assert body_of({"messages": [user("x")]}, dep(max_tokens=333))["max_tokens"] == 333
    assert body_of({"messages": [user("x")], "max_tokens": 50}, dep(max_tokens=333))["max_tokens"] == 50
    assert body_of({"messages": [user("x")], "max_tokens": 50, "max_completion_tokens": 70})["max_tokens"] == 70
    with pytest.raises(GatewayError) as info:
        body_of({"messages": [user("x")], "max_tokens": "10"})
    assert info.value.param == "max_tokens"


def test_stop_list_and_sampling() -> None:
    body = body_of({"messages": [user("x")], "stop": ["a", "b"], "temperature": 1.7, "top_k": 5})
    assert body["stop_sequences"] == ["a", "b"]
    assert body["temperature"] == 1.0
    assert body["top_k"] == 5
    assert body_of({"messages": [user("x")], "top_p": 0.9})["top_p"] == 0.9


def test_temperature_and_top_p_drops_top_p(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fastgw.providers.anthropic"):
        body = body_of({"messages": [user("x")], "temperature": 0.5, "top_p": 0.9})
    assert body["temperature"] == 0.5
    assert "top_p" not in body
    assert "top_p" in caplog.text


@pytest.mark.parametrize("param,value", [
    ("n", 2), ("logprobs", True), ("top_logprobs", 3), ("presence_penalty", 0.5), ("frequency_penalty", 0.1),
    ("logit_bias", {"50256": -100}), ("seed", 7),
])
def test_unsupported_params(param: str, value: object) -> None:
    openai = {"messages": [user("x")], param: value}
    with pytest.raises(GatewayError) as info:
        body_of(openai)
    assert info.value.status == 400
    assert info.value.param == param
    assert info.value.code == "unsupported_parameter"
    assert "anthropic" in info.value.message
    body = body_of(openai, dep(drop_params=True))
    assert param not in body
    assert openai[param] == value  # the client's body is not mutated


def test_neutral_values_are_not_rejected() -> None:
    body = body_of({"messages": [user("x")], "n": 1, "logprobs": False, "presence_penalty": 0,
                    "frequency_penalty": 0.0, "logit_bias": {}, "seed": None})
    assert set(body) == {"model", "messages", "max_tokens"}


@pytest.mark.parametrize("choice,expected", [
    ("auto", {"type": "auto"}),
    ("none", {"type": "none"}),
    ("required", {"type": "any"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"type": "tool", "name": "get_weather"}),
])
def test_tool_choice(choice: object, expected: dict) -> None:
    body = body_of({"messages": [user("x")], "tools": [WEATHER_TOOL], "tool_choice": choice})
    assert body["tool_choice"] == expected


def test_parallel_tool_calls_false() -> None:
    body = body_of({"messages": [user("x")], "tools": [WEATHER_TOOL], "parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    body = body_of({"messages": [user("x")], "tools": [WEATHER_TOOL], "tool_choice": "required",
                    "parallel_tool_calls": False})
    assert body["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert "tool_choice" not in body_of({"messages": [user("x")], "parallel_tool_calls": False})


def test_images_and_documents() -> None:
    body = body_of({"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {"type": "image_url", "image_url": "data:image/jpeg;base64,AAAA"},
        {"type": "file", "file": {"file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"}},
    ]}]})
    assert body["messages"][0]["content"] == [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "AAAA"}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"},
         "title": "a.pdf"},
    ]
    with pytest.raises(GatewayError):
        body_of({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]})
    with pytest.raises(GatewayError) as info:
        body_of({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]})
    assert info.value.code == "unsupported_parameter"


def test_cache_control_passes_through() -> None:
    ephemeral = {"type": "ephemeral"}
    tool = dict(WEATHER_TOOL, cache_control=ephemeral)
    body = body_of({"tools": [tool], "messages": [
        {"role": "system", "content": [{"type": "text", "text": "long system", "cache_control": ephemeral}]},
        {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b",
                                                                    "cache_control": ephemeral}]},
        {"role": "assistant", "content": "ok", "cache_control": {"type": "ephemeral", "ttl": "1h"}},
        {"role": "user", "content": "again", "cache_control": ephemeral},
    ]})
    assert body["system"] == [{"type": "text", "text": "long system", "cache_control": ephemeral}]
    assert body["tools"][0]["cache_control"] == ephemeral
    assert body["messages"][0]["content"][1] == {"type": "text", "text": "b", "cache_control": ephemeral}
    assert body["messages"][1]["content"] == [{"type": "text", "text": "ok",
                                               "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    assert body["messages"][2]["content"] == [{"type": "text", "text": "again", "cache_control": ephemeral}]


def test_several_system_messages_stay_separate_blocks() -> None:
    body = body_of({"messages": [{"role": "system", "content": "one"}, user("x"),
                                 {"role": "developer", "content": "two"}]})
    assert body["system"] == [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}]
    assert body["messages"] == [{"role": "user", "content": "x"}]


def test_consecutive_tool_results_merge_into_one_user_turn() -> None:
    calls = [{"id": f"toolu_{i}", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
             for i in range(2)]
    body = body_of({"tools": [WEATHER_TOOL], "messages": [
        user("both cities"),
        {"role": "assistant", "content": None, "tool_calls": calls},
        {"role": "tool", "tool_call_id": "toolu_0", "content": "sunny"},
        {"role": "tool", "tool_call_id": "toolu_1", "content": [{"type": "text", "text": "rain"}], "is_error": True},
        user("thanks"),
    ]})
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user", "user"]
    assert body["messages"][1]["content"][0]["input"] == {}
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_0", "content": "sunny"},
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "rain"}],
         "is_error": True},
    ]


def test_bad_tool_arguments_are_a_400() -> None:
    with pytest.raises(GatewayError) as info:
        body_of({"messages": [{"role": "assistant", "tool_calls": [
            {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{not json"}}]}]})
    assert info.value.param == "messages[0].tool_calls[0].function.arguments"


def test_reasoning_effort_to_thinking() -> None:
    for effort, budget in THINKING_BUDGETS.items():
        body = body_of({"messages": [user("x")], "reasoning_effort": effort, "max_tokens": 500})
        assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
        assert body["max_tokens"] == budget + 500 > budget
    body = body_of({"messages": [user("x")], "reasoning_effort": "low", "max_tokens": 3000})
    assert body["max_tokens"] == 3000  # already above the budget
    body = body_of({"messages": [user("x")], "reasoning_effort": "high"}, dep(info={"max_output_tokens": 20000}))
    assert THINKING_BUDGETS["high"] < body["max_tokens"] <= 20000
    assert "thinking" not in body_of({"messages": [user("x")], "reasoning_effort": "none"})
    with pytest.raises(GatewayError):
        body_of({"messages": [user("x")], "reasoning_effort": "extreme"})


def test_thinking_drops_temperature_and_unforces_json_tool(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="fastgw.providers.anthropic"):
        body = body_of({"messages": [user("x")], "reasoning_effort": "medium", "temperature": 0.3,
                        "response_format": {"type": "json_object"}})
    assert "temperature" not in body
    assert body["tool_choice"] == {"type": "auto"}
    assert "temperature" in caplog.text


def test_thinking_blocks_round_trip_first_in_the_turn() -> None:
    blocks = [{"type": "thinking", "thinking": "hmm", "signature": "sig=="},
              {"type": "redacted_thinking", "data": "opaque"}]
    body = body_of({"tools": [WEATHER_TOOL], "messages": [
        user("weather?"),
        {"role": "assistant", "content": "", "reasoning_content": "hmm", "thinking_blocks": blocks,
         "tool_calls": [{"id": "toolu_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
    ]})
    assert body["messages"][1]["content"] == blocks + [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]


def test_user_metadata_extra_params_and_passthrough() -> None:
    body = body_of({"messages": [user("x")], "user": "u-9", "metadata": {"k": "v"}, "store": True,
                    "top_k": 3}, dep(extra={"top_k": 9, "service_tier": "auto"}))
    assert body["metadata"] == {"user_id": "u-9"}
    assert body["top_k"] == 3  # the client's value wins over the config's
    assert body["service_tier"] == "auto"
    assert "store" not in body


# --------------------------------------------------------------------------------------
# responses
# --------------------------------------------------------------------------------------
def test_response_transcript() -> None:
    out = PROVIDER.chat_response(dep(), raw("anthropic-messages.response.json"))
    assert out["object"] == "chat.completion"
    assert out["id"] == "msg_01XFDUDYJgAACzvnptvVoYEL"
    assert out["model"] == MODEL
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant"
    assert choice["message"]["content"] == "The capital of France is Paris."
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 21, "completion_tokens": 10, "total_tokens": 31,
                            "prompt_tokens_details": {"cached_tokens": 0}, "cache_creation_input_tokens": 0,
                            "cache_read_input_tokens": 0,
                            "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}}


def test_response_usage_with_cache() -> None:
    message = load("anthropic-messages.response.json")
    message["usage"].update(input_tokens=5, cache_read_input_tokens=1000, cache_creation_input_tokens=300)
    usage = PROVIDER.chat_response(dep(), orjson.dumps(message))["usage"]
    assert usage["prompt_tokens"] == 1305
    assert usage["total_tokens"] == 1315
    assert usage["prompt_tokens_details"] == {"cached_tokens": 1000}
    assert usage["cache_creation_input_tokens"] == 300
    assert usage["cache_read_input_tokens"] == 1000


def tool_message(*blocks: dict, stop: str = "tool_use") -> bytes:
    message = load("anthropic-messages.response.json")
    message["content"] = list(blocks)
    message["stop_reason"] = stop
    return orjson.dumps(message)


def test_response_tool_calls_and_thinking() -> None:
    data = tool_message(
        {"type": "thinking", "thinking": "Need weather.", "signature": "sig"},
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
    )
    message = PROVIDER.chat_response(dep(), data)["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    msg = message["message"]
    assert msg["content"] == "Checking."
    assert msg["reasoning_content"] == "Need weather."
    assert msg["thinking_blocks"] == [{"type": "thinking", "thinking": "Need weather.", "signature": "sig"}]
    assert msg["tool_calls"] == [{"id": "toolu_1", "type": "function",
                                  "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
    assert orjson.loads(msg["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}


def test_response_json_tool_becomes_content() -> None:
    data = tool_message({"type": "tool_use", "id": "toolu_1", "name": JSON_TOOL_NAME, "input": {"a": 1}})
    choice = PROVIDER.chat_response(dep(), data)["choices"][0]
    assert choice["message"]["content"] == "{\"a\":1}"
    assert "tool_calls" not in choice["message"]
    assert choice["finish_reason"] == "stop"


@pytest.mark.parametrize("stop,finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("pause_turn", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("refusal", "content_filter"), ("something_new", "stop"),
])
def test_finish_reasons(stop: str, finish: str) -> None:
    data = tool_message({"type": "text", "text": "x"}, stop=stop)
    assert PROVIDER.chat_response(dep(), data)["choices"][0]["finish_reason"] == finish


def test_response_not_json() -> None:
    with pytest.raises(GatewayError) as info:
        PROVIDER.chat_response(dep(), b"<html>")
    assert info.value.status == 502


# --------------------------------------------------------------------------------------
# streams
# --------------------------------------------------------------------------------------
STREAMS = ["anthropic-messages-stream.sse", "anthropic-messages-tools-stream.sse",
           "anthropic-messages-thinking-stream.sse"]


def splits(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 40)
        out.append(data[i:i + n])
        i += n
    return out


def decode(pieces: list[bytes]) -> list[dict]:
    decoder = PROVIDER.chat_stream_decoder(dep(), {})
    chunks: list[dict] = []
    for piece in pieces:
        chunks.extend(decoder.feed(piece))
    chunks.extend(decoder.close())
    for chunk in chunks:
        chunk.pop("created")
    return chunks


@pytest.mark.parametrize("name", STREAMS)
def test_stream_any_chunking_gives_identical_chunks(name: str) -> None:
    data = raw(name)
    whole = decode([data])
    assert whole == decode([data[i:i + 1] for i in range(len(data))])
    for seed in range(5):
        assert whole == decode(splits(data, seed))
    assert all(c["object"] == "chat.completion.chunk" and c["id"].startswith("msg_") for c in whole)
    assert whole[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert whole[-1]["choices"] == []
    assert whole[-1]["usage"]["completion_tokens"] > 0


def content_of(chunks: list[dict], key: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(key) or "" for c in chunks if c["choices"])


def finish_of(chunks: list[dict]) -> list[str]:
    return [c["choices"][0]["finish_reason"] for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]


def test_text_stream_matches_non_streaming() -> None:
    chunks = decode([raw("anthropic-messages-stream.sse")])
    full = PROVIDER.chat_response(dep(), raw("anthropic-messages.response.json"))
    assert content_of(chunks) == full["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert finish_of(chunks) == ["stop"]
    usage = chunks[-1]["usage"]
    assert usage == full["usage"]
    assert chunks[-1]["model"] == MODEL


def test_tools_stream() -> None:
    chunks = decode([raw("anthropic-messages-tools-stream.sse")])
    assert content_of(chunks) == "I'll check the weather in Paris."
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0] == {"index": 0, "id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert all(tc["index"] == 0 for tc in calls)
    arguments = "".join(tc["function"]["arguments"] for tc in calls)
    assert orjson.loads(arguments) == {"city": "Paris"}
    assert finish_of(chunks) == ["tool_calls"]
    assert chunks[-1]["usage"]["prompt_tokens"] == 384
    assert chunks[-1]["usage"]["completion_tokens"] == 52


def test_thinking_stream() -> None:
    chunks = decode([raw("anthropic-messages-thinking-stream.sse")])
    assert content_of(chunks, "reasoning_content") == "27 * 453 = 27 * 400 + 27 * 53 = 10800 + 1431 = 12231."
    assert content_of(chunks) == "27 × 453 = 12,231."
    blocks = [b for c in chunks if c["choices"] for b in c["choices"][0]["delta"].get("thinking_blocks") or []]
    assert blocks == [{"type": "thinking", "thinking": "27 * 453 = 27 * 400 + 27 * 53 = 10800 + 1431 = 12231.",
                       "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds2Nq3rOwExample"}]
    assert chunks[-1]["usage"]["completion_tokens"] == 61


def sse(*events: dict) -> bytes:
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def test_stream_json_tool_and_tool_without_deltas() -> None:
    start = {"type": "message_start", "message": {"id": "msg_1", "model": MODEL, "content": [],
                                                  "usage": {"input_tokens": 3, "output_tokens": 1}}}
    data = sse(
        start,
        {"type": "content_block_start", "index": 0,
         "content_block": {"type": "tool_use", "id": "toolu_j", "name": JSON_TOOL_NAME, "input": {}}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": "{\"a\":"}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": " 1}"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_n", "name": "now", "input": {}}},
        {"type": "content_block_stop", "index": 1},
        {"type": "content_block_start", "index": 2, "content_block": {"type": "redacted_thinking", "data": "xyz"}},
        {"type": "content_block_stop", "index": 2},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 9}},
        {"type": "message_stop"},
    )
    chunks = decode([data])
    assert content_of(chunks) == "{\"a\": 1}"
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [tc["index"] for tc in calls] == [0, 0]
    assert "".join(tc["function"]["arguments"] for tc in calls) == "{}"
    blocks = [b for c in chunks if c["choices"] for b in c["choices"][0]["delta"].get("thinking_blocks") or []]
    assert blocks == [{"type": "redacted_thinking", "data": "xyz"}]
    assert finish_of(chunks) == ["tool_calls"]


def test_stream_error_event_raises_overloaded() -> None:
    decoder = AnthropicStreamDecoder()
    chunks: list[dict] = []
    with pytest.raises(GatewayError) as info:
        for byte in raw("anthropic-messages-stream-error.sse"):
            chunks.extend(decoder.feed(bytes([byte])))
    assert content_of(chunks) == "The capital"
    err = info.value
    assert (err.status, err.code, err.retryable) == (503, "overloaded", True)
    assert decoder.usage is not None and decoder.usage["prompt_tokens"] == 21


@pytest.mark.parametrize("etype,status,code,retryable", [
    ("rate_limit_error", 429, "rate_limit_exceeded", True),
    ("api_error", 500, "server_error", True),
    ("invalid_request_error", 400, None, False),
])
def test_stream_error_types(etype: str, status: int, code: str | None, retryable: bool) -> None:
    decoder = AnthropicStreamDecoder()
    with pytest.raises(GatewayError) as info:
        decoder.feed(sse({"type": "error", "error": {"type": etype, "message": "boom"}}))
    assert (info.value.status, info.value.code, info.value.retryable) == (status, code, retryable)


def test_truncated_stream() -> None:
    data = raw("anthropic-messages-stream.sse")
    decoder = AnthropicStreamDecoder()
    decoder.feed(data[: data.index(b"event: message_stop")])
    with pytest.raises(GatewayError) as info:
        decoder.close()
    assert info.value.code == "stream_truncated"
    assert info.value.retryable


def test_malformed_event() -> None:
    with pytest.raises(GatewayError) as info:
        AnthropicStreamDecoder().feed(b"event: message_start\ndata: {oops\n\n")
    assert info.value.code == "malformed_stream"


def test_unknown_events_ignored() -> None:
    data = raw("anthropic-messages-stream.sse")
    extra = b"event: future_event\ndata: {\"type\":\"future_event\"}\n\n"
    index = data.index(b"event: content_block_stop")
    assert decode([data[:index] + extra + data[index:]]) == decode([data])


# --------------------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------------------
def upstream_error(name: str) -> GatewayError:
    status, headers, body = http_transcript(name)
    return PROVIDER.error(status, headers, body)


def test_error_429() -> None:
    err = upstream_error("anthropic-error-429.http")
    assert (err.status, err.code, err.retryable, err.retry_after) == (429, "rate_limit_exceeded", True, 17.0)
    assert err.headers == {"retry-after": "17"}
    assert err.type == "rate_limit_error"
    assert "30,000 input tokens" in err.message


def test_error_529() -> None:
    err = upstream_error("anthropic-error-529.http")
    assert (err.status, err.code, err.retryable) == (503, "overloaded", True)


def test_error_400_prompt_too_long() -> None:
    err = upstream_error("anthropic-error-400-prompt-too-long.http")
    assert (err.status, err.code, err.retryable) == (400, "context_length_exceeded", False)
    assert "prompt is too long" in err.message


def test_error_401_and_413() -> None:
    err = upstream_error("anthropic-error-401.http")
    assert (err.status, err.type, err.retryable) == (401, "authentication_error", False)
    err = upstream_error("anthropic-error-413.http")
    assert (err.status, err.code, err.retryable) == (413, "request_too_large", False)


def test_error_spend_limit_and_html_and_should_retry() -> None:
    body = orjson.dumps({"type": "error", "error": {"type": "rate_limit_error", "message": "spend limit",
                                                    "details": {"error_code": "enforced_spend_limit_reached"}}})
    err = PROVIDER.error(429, {}, body)
    assert (err.code, err.retryable) == ("insufficient_quota", False)
    err = PROVIDER.error(502, {"Content-Type": "text/html"}, b"<html>bad gateway</html>")
    assert (err.status, err.code, err.retryable) == (502, "server_error", True)
    err = PROVIDER.error(500, {"x-should-retry": "false"}, b"")
    assert not err.retryable


# --------------------------------------------------------------------------------------
# native pass-through
# --------------------------------------------------------------------------------------
def test_messages_request_keeps_the_body() -> None:
    body = load("anthropic-messages-tools-followup.request.json")
    body["system"] = [{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}]
    body["model"] = "claude-latest-alias"
    body["some_future_field"] = {"x": 1}
    original = copy.deepcopy(body)
    request = PROVIDER.messages_request(dep(), body, True, beta="prompt-caching-2024-07-31")
    sent = orjson.loads(request.body)
    assert sent == dict(original, model=MODEL, stream=True)
    assert body == original
    assert request.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert request.headers["x-api-key"] == "sk-ant-test"
    sent = orjson.loads(PROVIDER.messages_request(dep(), dict(original, stream=True), False).body)
    assert "stream" not in sent


@pytest.mark.parametrize("name", STREAMS)
def test_passthrough_decoder(name: str) -> None:
    data = raw(name)
    decoder = PROVIDER.messages_stream_decoder(dep())
    relayed = b"".join(decoder.feed(data[i:i + 7]) for i in range(0, len(data), 7))
    assert relayed == data
    assert decoder.close() == b""
    assert decoder.done and decoder.error is None
    assert decoder.usage == decode([data])[-1]["usage"]
    assert decoder.stop_reason in ("end_turn", "tool_use")


def test_passthrough_decoder_error_and_truncation() -> None:
    decoder = MessagesPassthroughDecoder()
    data = raw("anthropic-messages-stream-error.sse")
    assert decoder.feed(data) == data
    assert decoder.error is not None and decoder.error.code == "overloaded"
    assert decoder.close() == b""
    decoder = MessagesPassthroughDecoder()
    decoder.feed(raw("anthropic-messages-stream.sse")[:300])
    with pytest.raises(GatewayError) as info:
        decoder.close()
    assert info.value.code == "stream_truncated"


def test_messages_response_usage() -> None:
    usage = messages_response_usage(raw("anthropic-messages.response.json"))
    assert usage is not None and usage["prompt_tokens"] == 21 and usage["completion_tokens"] == 10
    assert messages_response_usage(b"nope") is None


# --------------------------------------------------------------------------------------
# the mock upstream, driven by the provider over real HTTP
# --------------------------------------------------------------------------------------
@pytest.fixture
async def mock_base():
    from aiohttp import web

    import mock_anthropic
    from common import Recorder

    app = web.Application()
    recorder = Recorder()
    app.add_routes(mock_anthropic.routes(recorder))
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", recorder
    await runner.cleanup()


async def send(base: str, model: str, openai: dict, stream: bool) -> tuple[int, dict, list[bytes]]:
    import aiohttp

    request = PROVIDER.chat_request(dep(model, api_base=base), openai, stream)
    async with aiohttp.ClientSession() as session:
        async with session.post(request.url, data=request.body, headers=request.headers) as response:
            pieces = [piece async for piece in response.content.iter_any()]
            return response.status, {k.lower(): v for k, v in response.headers.items()}, pieces


async def test_mock_upstream_streams_byte_for_byte(mock_base) -> None:
    base, recorder = mock_base
    openai = {"messages": [user("What is the capital of France?")], "stream": True}
    status, _, pieces = await send(base, f"{MODEL}@split=5", openai, True)
    assert status == 200
    assert b"".join(pieces) == raw("anthropic-messages-stream.sse")
    chunks = decode(pieces)
    assert content_of(chunks) == "The capital of France is Paris."
    sent = orjson.loads(recorder.requests[-1]["body"])
    assert sent["model"] == f"{MODEL}@split=5"
    assert recorder.requests[-1]["headers"]["anthropic-version"] == "2023-06-01"

    _, _, pieces = await send(base, MODEL, dict(openai, tools=[WEATHER_TOOL]), True)
    assert b"".join(pieces) == raw("anthropic-messages-tools-stream.sse")
    _, _, pieces = await send(base, MODEL, dict(openai, reasoning_effort="low"), True)
    assert b"".join(pieces) == raw("anthropic-messages-thinking-stream.sse")
    _, _, pieces = await send(base, f"{MODEL}@midstream_error", openai, True)
    assert b"".join(pieces) == raw("anthropic-messages-stream-error.sse")


async def test_mock_upstream_non_stream_and_errors(mock_base) -> None:
    base, _ = mock_base
    status, _, pieces = await send(base, MODEL, {"messages": [user("hi")]}, False)
    assert status == 200 and b"".join(pieces) == raw("anthropic-messages.response.json")
    status, _, pieces = await send(base, MODEL, {"messages": [user("hi")], "tools": [WEATHER_TOOL]}, False)
    out = PROVIDER.chat_response(dep(), b"".join(pieces))
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"] == "{\"city\":\"Paris\"}"
    status, headers, pieces = await send(base, f"{MODEL}@error=429", {"messages": [user("hi")]}, False)
    assert status == 429 and headers["retry-after"] == "17"
    assert PROVIDER.error(status, headers, b"".join(pieces)).retry_after == 17.0
    status, _, _ = await send(base, f"{MODEL}@error=anthropic-error-529.http", {"messages": [user("hi")]}, False)
    assert status == 529
