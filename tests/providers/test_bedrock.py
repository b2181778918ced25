"""Bedrock provider: request translation against the Converse transcripts, responses, the three
ConverseStream ``.bin`` transcripts under any chunking, corruption and truncation, errors from the
``.http`` transcripts, and end-to-end signing against the mock upstream (which verifies SigV4)."""
from __future__ import annotations

import base64
import os
import random
import struct
import sys
import zlib
from pathlib import Path

import orjson
import pytest
import yarl
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from fastgw.config.schema import Deployment, LitellmParams, ModelInfo
from fastgw.errors import GatewayError
from fastgw.providers import create_provider
from fastgw.providers.bedrock import BedrockProvider
from fastgw.providers.bedrock.converse_request import build_converse_body

TESTS = Path(__file__).resolve().parents[1]
TRANSCRIPTS = Path(os.environ.get("FASTGW_TRANSCRIPTS") or TESTS.parents[1] / "shared" / "reference" / "transcripts")
sys.path.insert(0, str(TESTS / "mocks"))

import mock_bedrock  # noqa: E402  (needs tests/mocks on sys.path)
from common import Recorder, http_transcript  # noqa: E402

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
NOW = 1705320000.0  # 2024-01-15T12:00:00Z, the x-amz-date of the SigV4 vectors
AKID = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
STREAMS = ["bedrock-converse-stream.bin", "bedrock-converse-stream-tools.bin", "bedrock-converse-stream-throttled.bin"]


def load(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def load_json(name: str) -> dict:
    return orjson.loads(load(name))


def deployment(model: str = MODEL, *, drop_params: bool = False, extra: dict | None = None,
               **params: object) -> Deployment:
    params.setdefault("aws_access_key_id", AKID)
    params.setdefault("aws_secret_access_key", SECRET)
    params.setdefault("aws_region_name", "us-east-1")
    return Deployment(id="dep-1", model_name="claude", provider="bedrock", model=model,
                      params=LitellmParams(model=f"bedrock/{model}", **params), info=ModelInfo(),
                      extra=dict(extra or {}), drop_params=drop_params)


def provider(environ: dict | None = None) -> BedrockProvider:
    return BedrockProvider(clock=lambda: NOW, new_id=lambda: "chatcmpl-test", environ=environ or {})


def error_of(call, *args) -> GatewayError:
    with pytest.raises(GatewayError) as info:
        call(*args)
    return info.value


# --- request translation vs transcripts -----------------------------------------------------

def test_converse_request_matches_transcript() -> None:
    body = {"model": "claude", "messages": [{"role": "system", "content": "You are a concise assistant."},
                                            {"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": ["\n\nHuman:"], "top_k": 50}
    assert build_converse_body(deployment(), body) == load_json("bedrock-converse.request.json")


def test_top_k_from_config_extra_params() -> None:
    body = {"messages": [{"role": "system", "content": "You are a concise assistant."},
                         {"role": "user", "content": "What is the capital of France?"}],
            "max_tokens": 64, "temperature": 0.2, "top_p": 0.9, "stop": ["\n\nHuman:"]}
    assert build_converse_body(deployment(extra={"top_k": 50}), body) == load_json("bedrock-converse.request.json")


def test_tools_request_matches_transcript() -> None:
    body = load_json("openai-chat-tools-stream.request.json")
    converted = build_converse_body(deployment(max_tokens=256), body)
    assert converted == load_json("bedrock-converse-tools.request.json")


def followup_body() -> dict:
    image = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="
    schema = {"type": "object", "properties": {"city": {"type": "string", "description": "City name"}},
              "required": ["city"]}
    return {
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": "What's the weather where this photo was taken?"},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image}", "detail": "low"}}]},
            {"role": "assistant", "content": "I'll check the weather in Paris.", "tool_calls": [
                {"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                 "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q",
             "content": "{\"temp_c\":18,\"sky\":\"clear\"}"},
        ],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": schema}}],
    }


def test_followup_request_matches_transcript() -> None:
    assert build_converse_body(deployment(), followup_body()) == \
        load_json("bedrock-converse-tools-followup.request.json")


def test_tool_choice_none_still_sends_tool_config_when_history_has_tools() -> None:
    body = dict(followup_body(), tool_choice="none")
    converted = build_converse_body(deployment(), body)
    assert converted["toolConfig"] == load_json("bedrock-converse-tools-followup.request.json")["toolConfig"]
    fresh = {"messages": [{"role": "user", "content": "hi"}], "tools": followup_body()["tools"], "tool_choice": "none"}
    assert "toolConfig" not in build_converse_body(deployment(), fresh)


def test_history_with_tools_but_no_definitions_declares_them() -> None:
    body = followup_body()
    del body["tools"]
    converted = build_converse_body(deployment(), body)
    assert converted["toolConfig"] == {"tools": [
        {"toolSpec": {"name": "get_weather", "inputSchema": {"json": {"type": "object", "properties": {}}}}}]}


@pytest.mark.parametrize("choice, expected", [
    ("auto", {"auto": {}}),
    ("required", {"any": {}}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"tool": {"name": "get_weather"}}),
])
def test_tool_choice(choice: object, expected: dict) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": followup_body()["tools"], "tool_choice": choice}
    assert build_converse_body(deployment(), body)["toolConfig"]["toolChoice"] == expected


def test_system_developer_and_consecutive_turns_merge() -> None:
    body = {"messages": [
        {"role": "system", "content": "a"}, {"role": "developer", "content": [{"type": "text", "text": "b"}]},
        {"role": "user", "content": "one"}, {"role": "user", "content": "two"},
        {"role": "assistant", "content": "x", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "f", "arguments": ""}},
            {"id": "t2", "type": "function", "function": {"name": "f", "arguments": "{\"a\":1}"}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "plain text"},
        {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "[1,2]"}]},
        {"role": "user", "content": "thanks"},
    ]}
    converted = build_converse_body(deployment(), body)
    assert converted["system"] == [{"text": "a"}, {"text": "b"}]
    assert [m["role"] for m in converted["messages"]] == ["user", "assistant", "user"]
    assert converted["messages"][0]["content"] == [{"text": "one"}, {"text": "two"}]
    assert converted["messages"][1]["content"][1:] == [
        {"toolUse": {"toolUseId": "t1", "name": "f", "input": {}}},
        {"toolUse": {"toolUseId": "t2", "name": "f", "input": {"a": 1}}}]
    assert converted["messages"][2]["content"] == [
        {"toolResult": {"toolUseId": "t1", "content": [{"text": "plain text"}], "status": "success"}},
        {"toolResult": {"toolUseId": "t2", "content": [{"text": "[1,2]"}], "status": "success"}},
        {"text": "thanks"}]


def test_inference_config_mapping() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 10, "max_completion_tokens": 20,
            "temperature": 1.7, "stop": "END"}
    assert build_converse_body(deployment(), body)["inferenceConfig"] == {
        "maxTokens": 20, "temperature": 1.0, "stopSequences": ["END"]}


def test_cache_control_adds_cache_point() -> None:
    body = {"messages": [{"role": "system", "content": [{"type": "text", "text": "long", "cache_control":
                                                          {"type": "ephemeral"}}]},
                         {"role": "user", "content": "hi"}]}
    assert build_converse_body(deployment(), body)["system"] == [{"text": "long"}, {"cachePoint": {"type": "default"}}]


def test_pdf_file_part_becomes_document() -> None:
    data = base64.b64encode(b"%PDF-1.4").decode()
    body = {"messages": [{"role": "user", "content": [
        {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{data}",
                                  "filename": "report_2024.pdf"}}]}]}
    block = build_converse_body(deployment(), body)["messages"][0]["content"][0]
    assert block == {"document": {"format": "pdf", "name": "report 2024", "source": {"bytes": data}}}


def test_response_format_json_schema_becomes_output_config() -> None:
    body = load_json("openai-chat-multimodal-json.request.json")
    converted = build_converse_body(deployment(), body)
    schema = body["response_format"]["json_schema"]["schema"]
    assert converted["outputConfig"] == {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {
        "schema": orjson.dumps(schema).decode(), "name": "answer"}}}}
    assert converted["system"] == [{"text": "Answer in JSON."}]
    assert converted["inferenceConfig"] == {"maxTokens": 200}
    tool_result = converted["messages"][-1]["content"][0]["toolResult"]
    assert tool_result["content"] == [{"json": {"temp_c": 18, "sky": "clear"}}]
    assert "parallel_tool_calls" not in converted.get("additionalModelRequestFields", {})


def test_json_object_is_unsupported_unless_dropped() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}
    err = error_of(build_converse_body, deployment(), body)
    assert (err.status, err.code, err.param) == (400, "unsupported_parameter", "response_format")
    assert "outputConfig" not in build_converse_body(deployment(drop_params=True), body)


@pytest.mark.parametrize("param, value", [("seed", 7), ("presence_penalty", 0.5), ("n", 2), ("logprobs", True)])
def test_unsupported_params(param: str, value: object) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], param: value}
    err = error_of(build_converse_body, deployment(), body)
    assert (err.status, err.param) == (400, param) and "bedrock" in err.message
    assert param not in build_converse_body(deployment(drop_params=True), body).get("additionalModelRequestFields", {})


def test_neutral_values_pass() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "n": 1, "presence_penalty": 0, "logprobs": False}
    assert build_converse_body(deployment(), body) == {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}


def test_reasoning_effort_for_anthropic_models() -> None:
    body = {"messages": [{"role": "user", "content": "27*453?"}], "reasoning_effort": "low"}
    converted = build_converse_body(deployment(), body)
    assert converted["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 1024}}
    assert converted["inferenceConfig"]["maxTokens"] > 1024
    small = build_converse_body(deployment(), dict(body, reasoning_effort="high", max_tokens=3000))
    assert small["additionalModelRequestFields"]["thinking"]["budget_tokens"] == 2999
    assert "additionalModelRequestFields" not in build_converse_body(deployment(), dict(body, reasoning_effort="none"))


def test_reasoning_effort_unsupported_for_other_models() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "low"}
    err = error_of(build_converse_body, deployment("amazon.nova-pro-v1:0"), body)
    assert err.param == "reasoning_effort"
    assert "additionalModelRequestFields" not in build_converse_body(deployment("amazon.nova-pro-v1:0",
                                                                                drop_params=True), body)


def test_remote_image_urls_are_rejected() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url",
                                                        "image_url": {"url": "https://example.com/a.png"}}]}]}
    err = error_of(build_converse_body, deployment(), body)
    assert err.status == 400 and "data: URL" in err.message


def test_invalid_tool_arguments_are_a_400() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "tool_calls": [
        {"id": "t", "type": "function", "function": {"name": "f", "arguments": "{oops"}}]}]}
    err = error_of(build_converse_body, deployment(), body)
    assert err.status == 400 and err.param == "messages[1].tool_calls[0].function.arguments"


# --- URL, signing and auth ---------------------------------------------------------------------

def sigv4_vector_headers(region: str, signature: str, token: str | None = None) -> dict[str, str]:
    signed = "content-type;host;x-amz-date" + (";x-amz-security-token" if token else "")
    headers = {"content-type": "application/json", "host": f"bedrock-runtime.{region}.amazonaws.com",
               "x-amz-date": "20240115T120000Z",
               "authorization": f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20240115/{region}/bedrock/aws4_request, "
                                f"SignedHeaders={signed}, Signature={signature}"}
    if token:
        headers["x-amz-security-token"] = token
    return headers


def test_chat_request_reproduces_sigv4_vector_1() -> None:
    body = {"model": "claude", "messages": [{"role": "user", "content": "Hello"}], "max_tokens": 256}
    request = provider().chat_request(deployment(), body, stream=False)
    assert request.method == "POST"
    assert request.url == ("https://bedrock-runtime.us-east-1.amazonaws.com/model/"
                           "anthropic.claude-3-haiku-20240307-v1%3A0/converse")
    assert request.body == (b'{"messages":[{"role":"user","content":[{"text":"Hello"}]}],'
                            b'"inferenceConfig":{"maxTokens":256}}')
    assert request.headers == sigv4_vector_headers(
        "us-east-1", "5afdcd6c4f537c89a5b1c0719243f7293d97c86a9ca43c66ceb75883c3a888b9")


def test_stream_request_reproduces_sigv4_vector_2_with_session_token() -> None:
    dep = deployment(aws_region_name="us-west-2", aws_session_token="FQoGZXIvYXdzEXAMPLESESSIONTOKEN")
    request = provider().chat_request(dep, {"messages": [{"role": "user", "content": "Hi"}], "stream": True,
                                            "stream_options": {"include_usage": True}}, stream=True)
    assert request.url.endswith("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse-stream")
    assert request.body == b'{"messages":[{"role":"user","content":[{"text":"Hi"}]}]}'
    assert request.headers == sigv4_vector_headers(
        "us-west-2", "03fd64a64c931a88a5845b9d2db1a4626f1f574b59427da6074d4b1399af089d",
        "FQoGZXIvYXdzEXAMPLESESSIONTOKEN")


def test_api_key_uses_bearer_and_no_signature() -> None:
    dep = deployment(aws_access_key_id=None, aws_secret_access_key=None, api_key="br-key")
    request = provider().chat_request(dep, {"messages": [{"role": "user", "content": "Hi"}]}, stream=False)
    assert request.headers == {"content-type": "application/json", "authorization": "Bearer br-key"}


def test_environment_fallbacks() -> None:
    dep = deployment(aws_access_key_id=None, aws_secret_access_key=None, aws_region_name=None)
    env = {"AWS_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": AKID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_SESSION_TOKEN": "tok"}
    request = provider(env).chat_request(dep, {"messages": [{"role": "user", "content": "Hi"}]}, stream=False)
    assert request.url.startswith("https://bedrock-runtime.eu-west-1.amazonaws.com/")
    assert request.headers["x-amz-security-token"] == "tok"
    assert "/eu-west-1/bedrock/aws4_request" in request.headers["authorization"]
    bearer = provider({"AWS_REGION": "eu-west-1", "AWS_BEARER_TOKEN_BEDROCK": "envkey"}).chat_request(
        dep, {"messages": [{"role": "user", "content": "Hi"}]}, stream=False)
    assert bearer.headers["authorization"] == "Bearer envkey"


def test_missing_credentials_or_region_is_a_config_error() -> None:
    dep = deployment(aws_access_key_id=None, aws_secret_access_key=None)
    assert error_of(provider().chat_request, dep, {"messages": []}, False).code == "config_error"
    dep = deployment(aws_region_name=None)
    assert error_of(provider().chat_request, dep, {"messages": []}, False).code == "config_error"


def test_litellm_role_and_profile_auth_are_reported_not_leaked() -> None:
    dep = deployment(aws_access_key_id=None, aws_secret_access_key=None,
                     extra={"aws_role_name": "arn:aws:iam::1:role/x"})
    err = error_of(provider().chat_request, dep, {"messages": [{"role": "user", "content": "Hi"}]}, False)
    assert err.code == "config_error" and "aws_role_name" in err.message
    dep = deployment(extra={"aws_profile_name": "dev", "top_k": 5})
    body = build_converse_body(dep, {"messages": [{"role": "user", "content": "Hi"}]})
    assert body["additionalModelRequestFields"] == {"top_k": 5}


def test_endpoint_override_keeps_encoded_model_path_and_signs_host_with_port() -> None:
    dep = deployment(f"converse/{MODEL}", aws_bedrock_runtime_endpoint="http://127.0.0.1:8123/")
    request = provider().chat_request(dep, {"messages": [{"role": "user", "content": "Hi"}]}, stream=False)
    assert request.url == f"http://127.0.0.1:8123/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse"
    assert request.headers["host"] == "127.0.0.1:8123"
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku"
    request = provider().chat_request(deployment(arn), {"messages": [{"role": "user", "content": "Hi"}]}, stream=False)
    assert "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.anthropic" in request.url


def test_registered() -> None:
    assert isinstance(create_provider("bedrock"), BedrockProvider)


# --- responses --------------------------------------------------------------------------------

def usage(prompt: int, completion: int, cached: int = 0, written: int = 0) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}, "completion_tokens_details": {"reasoning_tokens": 0},
            "cache_creation_input_tokens": written, "cache_read_input_tokens": cached}


def test_converse_response() -> None:
    out = provider().chat_response(deployment(), load("bedrock-converse.response.json"))
    assert out == {"id": "chatcmpl-test", "object": "chat.completion", "created": int(NOW), "model": MODEL,
                   "choices": [{"index": 0,
                                "message": {"role": "assistant", "content": "The capital of France is Paris."},
                                "logprobs": None, "finish_reason": "stop"}],
                   "usage": usage(21, 10)}


def test_converse_tools_response() -> None:
    out = provider().chat_response(deployment(), load("bedrock-converse-tools.response.json"))
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {"role": "assistant", "content": "I'll check the weather in Paris.", "tool_calls": [
        {"id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
         "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}
    assert out["usage"] == usage(384, 52)


def test_cache_usage_and_reasoning_content() -> None:
    data = orjson.dumps({"output": {"message": {"role": "assistant", "content": [
        {"reasoningContent": {"reasoningText": {"text": "think", "signature": "sig"}}}, {"text": "ok"}]}},
        "stopReason": "max_tokens",
        "usage": {"inputTokens": 5, "outputTokens": 7, "cacheReadInputTokens": 100, "cacheWriteInputTokens": 20,
                  "totalTokens": 132}})
    out = provider().chat_response(deployment(), data)
    assert out["choices"][0]["message"]["reasoning_content"] == "think"
    assert out["choices"][0]["message"]["content"] == "ok"
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["usage"] == usage(125, 7, cached=100, written=20)


@pytest.mark.parametrize("stop, finish", [
    ("end_turn", "stop"), ("stop_sequence", "stop"), ("max_tokens", "length"),
    ("model_context_window_exceeded", "length"), ("tool_use", "tool_calls"),
    ("guardrail_intervened", "content_filter"), ("content_filtered", "content_filter"), ("brand_new", "stop"),
])
def test_stop_reasons(stop: str, finish: str) -> None:
    data = orjson.dumps({"output": {"message": {"content": [{"text": "x"}]}}, "stopReason": stop, "usage": {}})
    assert provider().chat_response(deployment(), data)["choices"][0]["finish_reason"] == finish


@pytest.mark.parametrize("stop", ["malformed_model_output", "malformed_tool_use"])
def test_malformed_output_stop_reasons_are_retryable_errors(stop: str) -> None:
    data = orjson.dumps({"output": {"message": {"content": []}}, "stopReason": stop})
    err = error_of(provider().chat_response, deployment(), data)
    assert err.status == 502 and err.retryable


def test_non_json_response_is_a_bad_upstream_response() -> None:
    err = error_of(provider().chat_response, deployment(), b"<html>")
    assert (err.status, err.code, err.retryable) == (502, "bad_upstream_response", True)


# --- streams ----------------------------------------------------------------------------------

def decode(data: bytes, pieces: list[int] | None = None) -> tuple[list[dict], GatewayError | None, object]:
    """Feed ``data`` cut at ``pieces`` sizes (None = whole); chunks until the first error."""
    decoder = provider().chat_stream_decoder(deployment(), {})
    chunks: list[dict] = []
    i = 0
    sizes = iter(pieces or [len(data)])
    try:
        while i < len(data):
            n = next(sizes, len(data) - i)
            chunks += decoder.feed(data[i:i + n])
            i += n
        chunks += decoder.close()
    except GatewayError as exc:
        return chunks, exc, decoder
    return chunks, None, decoder


def random_sizes(n: int, seed: int) -> list[int]:
    rng = random.Random(seed)
    out = []
    while sum(out) < n:
        out.append(rng.randint(1, 40))
    return out


def test_plain_stream_chunks() -> None:
    chunks, err, decoder = decode(load("bedrock-converse-stream.bin"))
    assert err is None
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert "".join(d.get("content") or "" for d in deltas) == "The capital of France is Paris."
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    assert chunks[-1] == {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": int(NOW),
                          "model": MODEL, "choices": [], "usage": usage(21, 10)}
    assert decoder.usage == usage(21, 10)
    assert all(c["id"] == "chatcmpl-test" and c["object"] == "chat.completion.chunk" for c in chunks)


def test_tools_stream_chunks() -> None:
    chunks, err, _ = decode(load("bedrock-converse-stream-tools.bin"))
    assert err is None
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content") or "" for d in deltas) == "I'll check the weather in Paris."
    calls = [tc for d in deltas for tc in d.get("tool_calls") or []]
    assert calls[0] == {"index": 0, "id": "tooluse_kZJMlvQmRJ6eAyJE5GIl7Q", "type": "function",
                        "function": {"name": "get_weather", "arguments": ""}}
    assert "".join(tc["function"]["arguments"] for tc in calls) == "{\"city\": \"Paris\"}"
    assert all(tc["index"] == 0 for tc in calls)
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == usage(384, 52)


@pytest.mark.parametrize("name", STREAMS)
def test_streams_are_identical_under_any_chunking(name: str) -> None:
    data = load(name)
    whole = decode(data)
    for pieces in [[1] * len(data)] + [random_sizes(len(data), seed) for seed in range(8)]:
        split = decode(data, pieces)
        assert split[0] == whole[0]
        assert repr(split[1]) == repr(whole[1])


def test_throttled_stream_is_a_retryable_rate_limit() -> None:
    data = load("bedrock-converse-stream-throttled.bin")
    chunks, err, _ = decode(data, [1] * len(data))
    assert err is not None
    assert (err.status, err.code, err.retryable) == (429, "rate_limit_exceeded", True)
    assert "Too many tokens" in err.message
    # What came before the exception frame is valid output, identical to the normal stream's start.
    good, _, _ = decode(load("bedrock-converse-stream.bin"))
    assert chunks == good[:2] and decode(data)[0] == chunks


def frame_starts(data: bytes) -> list[int]:
    starts, i = [], 0
    while i < len(data):
        starts.append(i)
        i += struct.unpack(">I", data[i:i + 4])[0]
    return starts


def test_every_corrupted_byte_is_a_malformed_stream_error() -> None:
    data = load("bedrock-converse-stream.bin")
    good, _, _ = decode(data)
    starts = frame_starts(data)
    for position in range(len(data)):
        corrupted = bytearray(data)
        corrupted[position] ^= 0x5A
        chunks, err, decoder = decode(bytes(corrupted))
        assert err is not None and err.code == "malformed_stream" and err.retryable, position
        # Exactly the frames before the corrupted one became chunks (one chunk per frame here,
        # except contentBlockStop, which yields none) - never anything from the bad frame.
        bad_frame = max(i for i, start in enumerate(starts) if start <= position)
        assert chunks == good[:bad_frame - (bad_frame > 4)], position
        with pytest.raises(GatewayError):
            decoder.feed(data)  # the stream stays failed
        if position % 97 == 0:
            assert decode(bytes(corrupted), [1] * len(data))[0] == chunks


def test_every_truncation_is_detected_at_close() -> None:
    data = load("bedrock-converse-stream.bin")
    for cut in range(len(data)):
        _, err, _ = decode(data[:cut] if cut else b"")
        assert err is not None and err.code == "stream_truncated", cut


# A small frame encoder for events the transcripts do not contain (string headers only).
def frame(headers: dict[str, str], payload: dict | bytes) -> bytes:
    head = b"".join(bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v.encode())) + v.encode()
                    for k, v in headers.items())
    body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    total = 16 + len(head) + len(body)
    prelude = struct.pack(">II", total, len(head))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + body
    return message + struct.pack(">I", zlib.crc32(message))


def event(name: str, payload: dict) -> bytes:
    return frame({":event-type": name, ":content-type": "application/json", ":message-type": "event"}, payload)


def test_frame_encoder_matches_transcript_first_frame() -> None:
    data = load("bedrock-converse-stream.bin")
    assert event("messageStart", {"role": "assistant", "p": "abcdefghijkl"}) == data[:137]


def test_reasoning_deltas_and_unknown_events() -> None:
    data = b"".join([
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"text": "hmm"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": {"signature": "s"}}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("somethingNew", {"x": 1}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"text": "12231"}}),
        event("messageStop", {"stopReason": "end_turn"}),
        event("metadata", {"usage": {"inputTokens": 3, "outputTokens": 4, "cacheReadInputTokens": 2}}),
    ])
    chunks, err, _ = decode(data)
    assert err is None
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[1] == {"reasoning_content": "hmm"}
    assert deltas[2] == {"content": "12231"}
    assert chunks[-1]["usage"] == usage(5, 4, cached=2)


def test_two_parallel_tool_calls_get_their_own_indexes() -> None:
    data = b"".join([
        event("messageStart", {"role": "assistant"}),
        event("contentBlockStart", {"contentBlockIndex": 0, "start": {"toolUse": {"toolUseId": "a", "name": "f"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"toolUse": {"input": "{}"}}}),
        event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "b", "name": "g"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": "{\"x\":1}"}}}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": {"inputTokens": 1, "outputTokens": 1}}),
    ])
    chunks, err, _ = decode(data)
    calls = [tc for c in chunks if c["choices"] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert [(tc["index"], tc.get("id")) for tc in calls] == [(0, "a"), (0, None), (1, "b"), (1, None)]


@pytest.mark.parametrize("exception, status, code, retryable", [
    ("throttlingException", 429, "rate_limit_exceeded", True),
    ("serviceUnavailableException", 503, "server_error", True),
    ("internalServerException", 500, "server_error", True),
    ("modelStreamErrorException", 502, "server_error", True),
    ("validationException", 400, None, False),
])
def test_exception_frames(exception: str, status: int, code: str | None, retryable: bool) -> None:
    data = event("messageStart", {"role": "assistant"}) + frame(
        {":exception-type": exception, ":content-type": "application/json", ":message-type": "exception"},
        {"message": "boom"})
    _, err, _ = decode(data)
    assert (err.status, err.code, err.retryable) == (status, code, retryable)
    assert "boom" in err.message


def test_validation_exception_frame_with_context_wording() -> None:
    data = frame({":exception-type": "validationException", ":message-type": "exception"},
                 {"message": "Input is too long for requested model."})
    assert decode(data)[1].code == "context_length_exceeded"


def test_error_message_type_frame() -> None:
    data = frame({":message-type": "error", ":error-code": "InternalFailure", ":error-message": "bad things"}, b"")
    _, err, _ = decode(data)
    assert err.status == 502 and err.retryable and "bad things" in err.message


def test_odd_but_valid_payloads_do_not_crash() -> None:
    data = b"".join([
        event("messageStart", {}),
        event("contentBlockStart", {"contentBlockIndex": 0, "start": "text"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": "x"}),
        event("contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "a", "name": "f"}}}),
        event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": {"k": 1}}}}),
        event("messageStop", {}),
        event("metadata", {"usage": {"inputTokens": "7", "outputTokens": True}}),
    ])
    chunks, err, _ = decode(data)
    assert err is None
    assert chunks[2]["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"] == '{"k":1}'
    assert chunks[-1]["usage"]["total_tokens"] == 0


def test_non_json_event_payload_is_malformed() -> None:
    _, err, _ = decode(frame({":event-type": "contentBlockDelta", ":message-type": "event"}, b"{not json"))
    assert err.code == "malformed_stream"


def test_stop_without_metadata_is_truncated() -> None:
    data = event("messageStart", {"role": "assistant"}) + event("messageStop", {"stopReason": "end_turn"})
    assert decode(data)[1].code == "stream_truncated"


# --- errors from the .http transcripts --------------------------------------------------------

@pytest.mark.parametrize("name, status, etype, code, retryable", [
    ("bedrock-error-429-throttling.http", 429, "rate_limit_error", "rate_limit_exceeded", True),
    ("bedrock-error-400-validation.http", 400, "invalid_request_error", "context_length_exceeded", False),
    ("bedrock-error-403-access.http", 403, "permission_error", None, False),
    ("bedrock-error-403-signature.http", 403, "authentication_error", "invalid_api_key", False),
    ("bedrock-error-503.http", 503, "api_error", "server_error", True),
])
def test_http_errors(name: str, status: int, etype: str, code: str | None, retryable: bool) -> None:
    upstream_status, headers, body = http_transcript(name)
    err = provider().error(upstream_status, headers, body)
    assert (err.status, err.type, err.code, err.retryable) == (status, etype, code, retryable)
    assert err.message.startswith("bedrock: ") and orjson.loads(body)["message"] in err.message


def test_error_header_lookup_is_case_insensitive_and_html_bodies_are_classified_by_status() -> None:
    err = provider().error(400, {"X-Amzn-ErrorType": "ValidationException:http://x/"},
                           b'{"Message":"Input is too long for requested model."}')
    assert err.code == "context_length_exceeded" and "ValidationException" in err.message
    err = provider().error(502, {}, b"<html>bad gateway</html>")
    assert err.status == 502 and err.retryable
    err = provider().error(404, {"x-amzn-errortype": "ResourceNotFoundException:x"}, b'{"message":"no"}')
    assert (err.status, err.code, err.retryable) == (404, "model_not_found", False)


# --- embeddings -------------------------------------------------------------------------------

def test_titan_embeddings_request_and_response() -> None:
    dep = deployment("amazon.titan-embed-text-v2:0")
    request = provider().embeddings_request(dep, {"model": "emb", "input": ["hello"], "dimensions": 256})
    assert request.url.endswith("/model/amazon.titan-embed-text-v2%3A0/invoke")
    assert orjson.loads(request.body) == {"inputText": "hello", "dimensions": 256}
    out = provider().embeddings_response(dep, b'{"embedding":[0.5,-1.0],"inputTextTokenCount":2}',
                                         {"encoding_format": "base64"})
    assert out["usage"] == {"prompt_tokens": 2, "total_tokens": 2}
    assert struct.unpack("<2f", base64.b64decode(out["data"][0]["embedding"])) == (0.5, -1.0)


def test_embeddings_limits() -> None:
    err = error_of(provider().embeddings_request, deployment("amazon.titan-embed-text-v2:0"), {"input": ["a", "b"]})
    assert err.status == 400 and err.param == "input"
    err = error_of(provider().embeddings_request, deployment("cohere.embed-english-v3"), {"input": "a"})
    assert err.status == 400 and "Titan" in err.message


# --- end to end against the mock upstream (which verifies SigV4) ------------------------------

@pytest.fixture
async def upstream():
    recorder = Recorder()
    app = web.Application()
    app.add_routes(mock_bedrock.routes(recorder))
    server = TestServer(app)
    await server.start_server()
    try:
        yield server, recorder
    finally:
        await server.close()


def mock_deployment(server: TestServer, model: str = MODEL, **params: object) -> Deployment:
    params.setdefault("aws_access_key_id", mock_bedrock.TEST_ACCESS_KEY_ID)
    params.setdefault("aws_secret_access_key", mock_bedrock.TEST_SECRET_ACCESS_KEY)
    return deployment(model, aws_bedrock_runtime_endpoint=str(server.make_url("")).rstrip("/"), **params)


async def send(request, *, encoded: bool = True) -> tuple[int, dict, bytes, list[bytes]]:
    """What a transport must do: send the URL exactly as built (no re-encoding of %3A)."""
    async with ClientSession() as session:
        url = yarl.URL(request.url, encoded=True) if encoded else request.url
        async with session.request(request.method, url, headers=request.headers, data=request.body) as response:
            pieces = [piece async for piece in response.content.iter_any()]
            return response.status, dict(response.headers), b"".join(pieces), pieces


CHAT = {"model": "claude", "messages": [{"role": "user", "content": "What is the capital of France?"}]}


async def test_e2e_signed_converse(upstream) -> None:
    server, recorder = upstream
    dep = mock_deployment(server)
    status, _, body, _ = await send(provider().chat_request(dep, CHAT, stream=False))
    assert status == 200
    assert provider().chat_response(dep, body)["choices"][0]["message"]["content"] == "The capital of France is Paris."
    seen = recorder.requests[-1]
    assert seen["path"] == "/model/anthropic.claude-3-haiku-20240307-v1:0/converse"
    assert seen["headers"]["authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")


async def test_e2e_signed_stream_with_session_token_and_scenario_options(upstream) -> None:
    server, _ = upstream
    dep = mock_deployment(server, MODEL + "@split=random", aws_session_token="session-token")
    status, headers, body, pieces = await send(provider().chat_request(dep, CHAT, stream=True))
    assert status == 200 and headers["Content-Type"] == "application/vnd.amazon.eventstream"
    decoder = provider().chat_stream_decoder(dep, CHAT)
    chunks = [c for piece in pieces for c in decoder.feed(piece)] + decoder.close()
    expected = decode(load("bedrock-converse-stream.bin"))[0]
    assert [c["choices"] for c in chunks] == [c["choices"] for c in expected]
    assert decoder.usage == usage(21, 10)


async def test_e2e_tools_and_followup(upstream) -> None:
    server, _ = upstream
    dep = mock_deployment(server)
    tools_body = load_json("openai-chat-tools-stream.request.json")
    status, _, body, _ = await send(provider().chat_request(dep, tools_body, stream=False))
    assert provider().chat_response(dep, body)["choices"][0]["finish_reason"] == "tool_calls"
    status, _, body, _ = await send(provider().chat_request(dep, followup_body(), stream=False))
    assert status == 200 and provider().chat_response(dep, body)["choices"][0]["finish_reason"] == "stop"


async def test_e2e_bearer_api_key(upstream) -> None:
    server, _ = upstream
    dep = mock_deployment(server, aws_access_key_id=None, aws_secret_access_key=None,
                          api_key=mock_bedrock.TEST_API_KEY)
    status, _, _, _ = await send(provider().chat_request(dep, CHAT, stream=False))
    assert status == 200


async def test_e2e_wrong_secret_is_rejected_like_bedrock(upstream) -> None:
    server, _ = upstream
    dep = mock_deployment(server, aws_secret_access_key="not-the-secret")
    status, headers, body, _ = await send(provider().chat_request(dep, CHAT, stream=False))
    assert status == 403
    err = provider().error(status, headers, body)
    assert (err.type, err.code) == ("authentication_error", "invalid_api_key")


async def test_e2e_reencoded_url_breaks_the_signature(upstream) -> None:
    """A transport that lets yarl normalise ``%3A`` to ``:`` changes the signed path."""
    server, _ = upstream
    status, _, _, _ = await send(provider().chat_request(mock_deployment(server), CHAT, stream=False), encoded=False)
    assert status == 403


async def test_e2e_error_scenario(upstream) -> None:
    server, _ = upstream
    dep = mock_deployment(server, MODEL + "@error=429-throttling")
    status, headers, body, _ = await send(provider().chat_request(dep, CHAT, stream=False))
    err = provider().error(status, headers, body)
    assert (err.status, err.code, err.retryable) == (429, "rate_limit_exceeded", True)


@pytest.mark.parametrize("option, code", [("throttled", "rate_limit_exceeded"), ("corrupt", "malformed_stream"),
                                          ("truncate", "stream_truncated")])
async def test_e2e_broken_streams(upstream, option: str, code: str) -> None:
    server, _ = upstream
    dep = mock_deployment(server, f"{MODEL}@{option}@split=7")
    status, _, _, pieces = await send(provider().chat_request(dep, CHAT, stream=True))
    assert status == 200
    decoder = provider().chat_stream_decoder(dep, CHAT)
    with pytest.raises(GatewayError) as info:
        for piece in pieces:
            decoder.feed(piece)
        decoder.close()
    assert info.value.code == code


async def test_e2e_titan_embeddings(upstream) -> None:
    server, _ = upstream
    dep = mock_deployment(server, "amazon.titan-embed-text-v2:0")
    status, _, body, _ = await send(provider().embeddings_request(dep, {"input": "hello world", "dimensions": 4}))
    assert status == 200
    out = provider().embeddings_response(dep, body, {})
    assert len(out["data"][0]["embedding"]) == 4 and out["usage"]["prompt_tokens"] == 2
