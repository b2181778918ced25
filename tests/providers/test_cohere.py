"""Cohere v2 provider against the cohere-* transcripts, plus the mock upstream that serves them."""
from __future__ import annotations

import copy
import os
import sys
from pathlib import Path

import orjson

import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fastgw.config.schema import Deployment, LitellmParams, ModelInfo
from fastgw.errors import GatewayError
from fastgw.providers import PROVIDERS
from fastgw.providers.cohere import CohereProvider
from chunking import pieces

TESTS = Path(__file__).resolve().parents[1]
TRANSCRIPTS = Path(os.environ.get("FASTGW_TRANSCRIPTS") or TESTS.parents[1] / "shared" / "reference" / "transcripts")
sys.path.insert(0, str(TESTS / "mocks"))
import mock_cohere  # noqa: E402
from common import Recorder, http_transcript  # noqa: E402

PROVIDER = CohereProvider()


def load(name: str) -> dict:
    return orjson.loads((TRANSCRIPTS / name).read_bytes())


def raw(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def deployment(model: str = "command-a-03-2025", drop_params: bool = False, **params: object) -> Deployment:
    params.setdefault("api_key", "co-key")
    return Deployment(id="cohere-test", model_name="c", provider="cohere", model=model,
                      params=LitellmParams(model=f"cohere/{model}", **params), info=ModelInfo(), extra={},
                      drop_params=drop_params)


def request_body(body: dict, stream: bool = False, dep: Deployment | None = None) -> dict:
    return orjson.loads(PROVIDER.chat_request(dep or deployment(), body, stream).body)


def run_stream(data: bytes, mode: str = "whole") -> list[dict]:
    decoder = PROVIDER.chat_stream_decoder(deployment(), {})
    out = []
    for piece in pieces(data, mode):
        out.extend(decoder.feed(piece))
    out.extend(decoder.close())
    return out


def normalize(chunks: list[dict]) -> list[dict]:
    chunks = copy.deepcopy(chunks)
    for chunk in chunks:
        chunk["created"] = 0
    return chunks


def joined(chunks: list[dict], field: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c["choices"])


# -- requests ----------------------------------------------------------------------------------


def test_chat_request_matches_transcript() -> None:
    body = load("openai-chat.request.json") | {"top_p": 0.9, "top_k": 40}
    request = PROVIDER.chat_request(deployment(), body, False)
    assert request.url == "https://api.cohere.com/v2/chat"
    assert request.headers["authorization"] == "Bearer co-key"
    assert orjson.loads(request.body) == load("cohere-chat.request.json")


def test_stream_request_matches_transcript() -> None:
    body = load("openai-chat-stream.request.json")
    del body["max_tokens"]
    assert request_body(body, stream=True) == load("cohere-chat-stream.request.json")


def test_tools_stream_request_matches_transcript() -> None:
    assert request_body(load("openai-chat-tools-stream.request.json"), stream=True) == \
        load("cohere-chat-tools-stream.request.json")


def test_tools_followup_request_matches_transcript() -> None:
    call = {"id": "get_weather_1byjy32y4hvq", "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}
    body = {"model": "x", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What's the weather in Paris?"}]},
        {"role": "assistant", "content": "I will look up the weather in Paris.", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c":18,"sky":"clear"}'},
    ], "tools": load("openai-chat-multimodal-json.request.json")["tools"]}
    assert request_body(body) == load("cohere-chat-tools-followup.request.json")


def test_developer_role_images_and_json_schema() -> None:
    body = load("openai-chat-multimodal-json.request.json")
    out = request_body(body, dep=deployment(drop_params=True))
    assert out["messages"][0] == {"role": "system", "content": "Answer in JSON."}
    assert out["messages"][1]["content"][1] == body["messages"][1]["content"][1]  # image_url part as-is
    assert out["messages"][2]["tool_calls"][0]["id"] == "call_9fQk2LmWn4Xy7Rb1Tz3Vc8Hd"
    assert "tool_plan" not in out["messages"][2]
    assert out["response_format"] == {"type": "json_object",
                                      "json_schema": body["response_format"]["json_schema"]["schema"]}
    assert out["max_tokens"] == 200 and "n" not in out and "parallel_tool_calls" not in out


@pytest.mark.parametrize("choice,expected,tools", [
    ("auto", None, 1), ("required", "REQUIRED", 1), ("none", "NONE", 1),
    ({"type": "function", "function": {"name": "get_weather"}}, "REQUIRED", 1),
])
def test_tool_choice(choice: object, expected: str | None, tools: int) -> None:
    body = load("openai-chat-tools-stream.request.json") | {"tool_choice": choice}
    body["tools"] = body["tools"] + ([] if isinstance(choice, str) else
                                     [{"type": "function", "function": {"name": "other", "parameters": {}}}])
    out = request_body(body)
    assert out.get("tool_choice") == expected
    assert [t["function"]["name"] for t in out["tools"]] == ["get_weather"] * tools


@pytest.mark.parametrize("param,value", [("n", 2), ("logprobs", True), ("logit_bias", {"1": 2}),
                                         ("parallel_tool_calls", False)])
def test_unsupported_params(param: str, value: object) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], param: value}
    with pytest.raises(GatewayError) as info:
        request_body(body)
    assert (info.value.status, info.value.param, info.value.code) == (400, param, "unsupported_parameter")
    assert "'cohere'" in info.value.message
    assert param not in request_body(body, dep=deployment(drop_params=True))


def test_other_params() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "frequency_penalty": 0.1, "presence_penalty": 0.2,
            "stop": "END", "response_format": {"type": "json_object"}, "reasoning_effort": "high",
            "safety_mode": "STRICT", "n": 1}
    out = request_body(body)
    assert out["frequency_penalty"] == 0.1 and out["presence_penalty"] == 0.2
    assert out["stop_sequences"] == ["END"] and out["response_format"] == {"type": "json_object"}
    assert out["thinking"] == {"type": "enabled"} and out["safety_mode"] == "STRICT"
    assert request_body(body | {"reasoning_effort": "none"})["thinking"] == {"type": "disabled"}


def test_registered_and_api_base() -> None:
    assert PROVIDERS["cohere"] is CohereProvider
    assert PROVIDER.chat_request(deployment(api_base="http://h:1/v2"), {"messages": []}, False).url == "http://h:1/v2/chat"


# -- responses ---------------------------------------------------------------------------------


def test_chat_response() -> None:
    out = PROVIDER.chat_response(deployment(), raw("cohere-chat.response.json"))
    ChatCompletion.model_validate(out)
    assert out["id"] == "c14c80c3-18eb-4519-9460-6c92edd8cfb4" and out["model"] == "command-a-03-2025"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "The capital of France is Paris."}
    assert out["choices"][0]["finish_reason"] == "stop"
    # usage.tokens (processed), not billed_units
    assert (out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"], out["usage"]["total_tokens"]) == (503, 9, 512)


def test_tool_call_response() -> None:
    answer = orjson.loads(mock_cohere.assemble_tool_answer())
    out = PROVIDER.chat_response(deployment(), orjson.dumps(answer))
    ChatCompletion.model_validate(out)
    message = out["choices"][0]["message"]
    assert message["content"] == "I will look up the weather in Paris."
    assert message["tool_calls"][0]["id"] == "get_weather_1byjy32y4hvq"
    assert orjson.loads(message["tool_calls"][0]["function"]["arguments"]) == {"city": "Paris"}
    assert out["choices"][0]["finish_reason"] == "tool_calls"
    assert out["usage"]["total_tokens"] == 1132 + 54


def _with_finish(reason: str) -> bytes:
    answer = load("cohere-chat.response.json")
    answer["finish_reason"] = reason
    return orjson.dumps(answer)


@pytest.mark.parametrize("reason,expected", [("COMPLETE", "stop"), ("STOP_SEQUENCE", "stop"),
                                             ("MAX_TOKENS", "length"), ("TOOL_CALL", "tool_calls")])
def test_finish_reasons(reason: str, expected: str) -> None:
    assert PROVIDER.chat_response(deployment(), _with_finish(reason))["choices"][0]["finish_reason"] == expected


@pytest.mark.parametrize("reason", ["ERROR", "TIMEOUT"])
def test_error_finish_reasons_raise(reason: str) -> None:
    with pytest.raises(GatewayError) as info:
        PROVIDER.chat_response(deployment(), _with_finish(reason))
    assert info.value.retryable and reason in info.value.message


def test_thinking_content() -> None:
    answer = load("cohere-chat.response.json")
    answer["message"]["content"].insert(0, {"type": "thinking", "thinking": "Paris is the capital."})
    message = PROVIDER.chat_response(deployment(), orjson.dumps(answer))["choices"][0]["message"]
    assert message["reasoning_content"] == "Paris is the capital."
    assert message["content"] == "The capital of France is Paris."


# -- streams -----------------------------------------------------------------------------------

MODES = ["whole", "bytes", "random-1", "random-2", "random-3"]


@pytest.mark.parametrize("name", ["cohere-chat-stream.sse", "cohere-chat-tools-stream.sse"])
def test_stream_splits_give_identical_output(name: str) -> None:
    expected = normalize(run_stream(raw(name)))
    for mode in MODES[1:]:
        assert normalize(run_stream(raw(name), mode)) == expected


def test_text_stream() -> None:
    chunks = run_stream(raw("cohere-chat-stream.sse"))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    nonstream = PROVIDER.chat_response(deployment(), raw("cohere-chat.response.json"))
    assert joined(chunks) == nonstream["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == nonstream["usage"]


def test_tools_stream() -> None:
    chunks = run_stream(raw("cohere-chat-tools-stream.sse"))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    assert joined(chunks) == "I will look up the weather in Paris."
    calls = [call for c in chunks if c["choices"] for call in c["choices"][0]["delta"].get("tool_calls") or ()]
    assert calls[0]["id"] == "get_weather_1byjy32y4hvq" and calls[0]["function"]["name"] == "get_weather"
    assert {c["index"] for c in calls} == {0}
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"city": "Paris"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 1132 and chunks[-1]["usage"]["completion_tokens"] == 54


@pytest.mark.parametrize("mode", MODES)
def test_truncated_stream(mode: str) -> None:
    data = raw("cohere-chat-stream.sse")
    cut = data[: data.index(b"event: message-end")]
    with pytest.raises(GatewayError) as info:
        run_stream(cut, mode)
    assert info.value.code == "stream_truncated"


def test_in_band_error() -> None:
    data = mock_cohere.stream_body({}, {"midstream_error": ""})
    with pytest.raises(GatewayError) as info:
        run_stream(data)
    assert info.value.retryable and "internal error while generating" in info.value.message


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,status,code,retryable", [
    ("cohere-error-429.http", 429, "rate_limit_exceeded", True),
    ("cohere-error-400-too-many-tokens.http", 400, "context_length_exceeded", False),
    ("cohere-error-401.http", 401, None, False),
])
def test_errors(name: str, status: int, code: str | None, retryable: bool) -> None:
    upstream_status, headers, body = http_transcript(name)
    error = PROVIDER.error(upstream_status, headers, body)
    assert (error.status, error.code, error.retryable) == (status, code, retryable)
    assert error.message.startswith("cohere: ")
    assert error.type == {429: "rate_limit_error", 400: "invalid_request_error", 401: "authentication_error"}[status]


def test_other_statuses() -> None:
    assert PROVIDER.error(498, {}, b'{"message": "invalid token"}').status == 401
    assert PROVIDER.error(402, {}, b'{"message": "pay"}').code == "insufficient_quota"
    assert PROVIDER.error(503, {}, b"").retryable


# -- embeddings --------------------------------------------------------------------------------


def test_embed_request_matches_transcript() -> None:
    body = load("openai-embeddings.request.json") | {"dimensions": 256}
    request = PROVIDER.embeddings_request(deployment("embed-v4.0"), body)
    assert request.url == "https://api.cohere.com/v2/embed"
    assert orjson.loads(request.body) == load("cohere-embed.request.json")
    custom = PROVIDER.embeddings_request(deployment("embed-v4.0"), body | {"input_type": "search_query"})
    assert orjson.loads(custom.body)["input_type"] == "search_query"


def test_embed_response() -> None:
    body = load("openai-embeddings.request.json")
    out = PROVIDER.embeddings_response(deployment("embed-v4.0"), raw("cohere-embed.response.json"), body)
    assert [d["embedding"] for d in out["data"]] == [d["embedding"] for d in load("openai-embeddings.response.json")["data"]]
    assert out["usage"] == {"prompt_tokens": 3, "total_tokens": 3}
    out = PROVIDER.embeddings_response(deployment("embed-v4.0"), raw("cohere-embed.response.json"),
                                       body | {"encoding_format": "base64"})
    assert out["data"] == load("openai-embeddings-base64.response.json")["data"]


# -- through the mock upstream -----------------------------------------------------------------


@pytest.fixture
async def upstream():
    app = web.Application()
    recorder = Recorder()
    app.add_routes(mock_cohere.routes(recorder))
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


async def send(request) -> tuple[int, dict, list[bytes]]:
    async with ClientSession() as session:
        async with session.request(request.method, request.url, headers=request.headers, data=request.body) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, \
                [chunk async for chunk in resp.content.iter_any()]


def mock_dep(server: TestServer, model: str = "command-a-03-2025", **params: object) -> Deployment:
    return deployment(model, api_base=str(server.make_url("")), **params)


@pytest.mark.parametrize("split", ["", "@split=1", "@split=random"])
async def test_mock_streams(upstream: TestServer, split: str) -> None:
    dep = mock_dep(upstream, "command-a-03-2025" + split)
    for request, name in ((load("openai-chat-stream.request.json"), "cohere-chat-stream.sse"),
                          (load("openai-chat-tools-stream.request.json"), "cohere-chat-tools-stream.sse")):
        status, _, body = await send(PROVIDER.chat_request(dep, request, True))
        assert status == 200 and b"".join(body) == raw(name)
        decoder = PROVIDER.chat_stream_decoder(dep, request)
        chunks = [c for piece in body for c in decoder.feed(piece)] + decoder.close()
        assert chunks[-1]["usage"]["total_tokens"] > 0


async def test_mock_chat_and_embed(upstream: TestServer) -> None:
    status, _, body = await send(PROVIDER.chat_request(mock_dep(upstream), load("openai-chat.request.json"), False))
    assert status == 200 and b"".join(body) == raw("cohere-chat.response.json")
    dep = mock_dep(upstream, "embed-v4.0")
    status, _, body = await send(PROVIDER.embeddings_request(dep, load("openai-embeddings.request.json")))
    assert status == 200 and b"".join(body) == raw("cohere-embed.response.json")


@pytest.mark.parametrize("option,status,code", [("@error=429", 429, "rate_limit_exceeded"),
                                                ("@error=400-too-many-tokens", 400, "context_length_exceeded")])
async def test_mock_errors(upstream: TestServer, option: str, status: int, code: str) -> None:
    dep = mock_dep(upstream, "command-a-03-2025" + option)
    upstream_status, headers, body = await send(PROVIDER.chat_request(dep, load("openai-chat.request.json"), False))
    error = PROVIDER.error(upstream_status, headers, b"".join(body))
    assert (error.status, error.code) == (status, code)


async def test_mock_requires_auth_and_truncates(upstream: TestServer) -> None:
    status, _, _ = await send(PROVIDER.chat_request(mock_dep(upstream, api_key=None), load("openai-chat.request.json"),
                                                    False))
    assert status == 401
    dep = mock_dep(upstream, "command-a-03-2025@truncate")
    _, _, body = await send(PROVIDER.chat_request(dep, load("openai-chat-stream.request.json"), True))
    with pytest.raises(GatewayError) as info:
        run_stream(b"".join(body))
    assert info.value.code == "stream_truncated"
