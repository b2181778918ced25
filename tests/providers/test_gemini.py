"""Gemini provider against the gemini-* transcripts, plus the mock upstream that serves them."""
from __future__ import annotations

import base64
import copy
import os
import struct
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
from fastgw.providers.gemini import GeminiProvider
from fastgw.providers.gemini.signatures import decode_signature, encode_call_id
from chunking import pieces

TESTS = Path(__file__).resolve().parents[1]
TRANSCRIPTS = Path(os.environ.get("FASTGW_TRANSCRIPTS") or TESTS.parents[1] / "shared" / "reference" / "transcripts")
sys.path.insert(0, str(TESTS / "mocks"))
import mock_gemini  # noqa: E402
from common import Recorder, http_transcript  # noqa: E402

PROVIDER = GeminiProvider()


def load(name: str) -> dict:
    return orjson.loads((TRANSCRIPTS / name).read_bytes())


def raw(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def deployment(model: str = "gemini-2.5-flash", **params: object) -> Deployment:
    drop = bool(params.pop("drop_params", False))
    extra = params.pop("extra", {})
    return Deployment(id="gemini-test", model_name="g", provider="gemini", model=model,
                      params=LitellmParams(model=f"gemini/{model}", api_key="goog-key", **params),
                      info=ModelInfo(), extra=dict(extra), drop_params=drop)


def request_body(body: dict, stream: bool = False, dep: Deployment | None = None) -> dict:
    return orjson.loads(PROVIDER.chat_request(dep or deployment(), body, stream).body)


def run_stream(data: bytes, mode: str = "whole", dep: Deployment | None = None) -> list[dict]:
    decoder = PROVIDER.chat_stream_decoder(dep or deployment(), {})
    out = []
    for piece in pieces(data, mode):
        out.extend(decoder.feed(piece))
    out.extend(decoder.close())
    return out


def normalize(chunks: list[dict]) -> list[dict]:
    """Generated call ids and timestamps differ run to run; everything else must not."""
    chunks = copy.deepcopy(chunks)
    for chunk in chunks:
        chunk["created"] = 0
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or ():
                if "id" in call:
                    call["id"] = "ID"
    return chunks


def joined(chunks: list[dict], field: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c["choices"])


# -- request transforms ------------------------------------------------------------------------


def test_generate_request_matches_transcript() -> None:
    body = load("openai-chat.request.json") | {"n": 1, "reasoning_effort": "none"}
    request = PROVIDER.chat_request(deployment(), body, False)
    assert request.url == "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    assert request.headers["x-goog-api-key"] == "goog-key"
    assert "authorization" not in request.headers
    assert orjson.loads(request.body) == load("gemini-generate.request.json")


def test_stream_request_matches_transcript() -> None:
    body = load("openai-chat-stream.request.json") | {"reasoning_effort": "none"}
    request = PROVIDER.chat_request(deployment(), body, True)
    assert request.url.endswith("/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse")
    assert orjson.loads(request.body) == load("gemini-stream.request.json")


def test_function_call_request_matches_transcript() -> None:
    body = load("openai-chat-tools-stream.request.json")
    assert request_body(body, stream=True) == load("gemini-function-call.request.json")


def test_function_response_request_uses_name_of_earlier_call() -> None:
    answer = PROVIDER.chat_response(deployment(), raw("gemini-function-call.response.json"))
    call = answer["choices"][0]["message"]["tool_calls"][0]
    tools = load("openai-chat-multimodal-json.request.json")["tools"]
    body = {"messages": [
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": '{"temp_c":18,"sky":"clear"}'},
    ], "tools": tools}
    assert request_body(body) == load("gemini-function-response.request.json")


def test_multimodal_json_schema_request() -> None:
    body = load("openai-chat-multimodal-json.request.json")
    out = request_body(body, dep=deployment(drop_params=True))
    assert out["systemInstruction"] == {"parts": [{"text": "Answer in JSON."}]}
    user, model, tool = out["contents"]
    assert user["role"] == "user"
    assert user["parts"][0] == {"text": "Describe this image and check the weather there."}
    assert user["parts"][1]["inlineData"]["mimeType"] == "image/png"
    assert user["parts"][1]["inlineData"]["data"].startswith("iVBORw0KGgo")
    assert model == {"role": "model", "parts": [{"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}}]}
    assert tool == {"role": "user", "parts": [{"functionResponse": {"name": "get_weather",
                                                                      "response": {"temp_c": 18, "sky": "clear"}}}]}
    schema = body["response_format"]["json_schema"]["schema"]
    assert out["generationConfig"] == {"maxOutputTokens": 200, "candidateCount": 1,
                                       "responseMimeType": "application/json", "responseJsonSchema": schema}


def test_parallel_tool_calls_false_is_rejected_unless_dropped() -> None:
    body = load("openai-chat-multimodal-json.request.json")
    with pytest.raises(GatewayError) as info:
        request_body(body)
    assert info.value.status == 400 and info.value.param == "parallel_tool_calls"
    assert "'gemini'" in info.value.message
    body["parallel_tool_calls"] = True  # the default: nothing to reject
    request_body(body)


@pytest.mark.parametrize("param,value", [("logit_bias", {"1": 5}), ("audio", {"voice": "alloy"}),
                                         ("modalities", ["text", "audio"]), ("prediction", {"type": "content"})])
def test_unsupported_params(param: str, value: object) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], param: value}
    with pytest.raises(GatewayError) as info:
        request_body(body)
    assert (info.value.status, info.value.param, info.value.code) == (400, param, "unsupported_parameter")
    assert param not in str(request_body(body, dep=deployment(drop_params=True)))


def test_sampling_params() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "top_p": 0.5, "top_k": 7, "stop": "END",
            "presence_penalty": 0.1, "frequency_penalty": 0.2, "n": 2, "max_completion_tokens": 9, "max_tokens": 3,
            "logprobs": True, "top_logprobs": 3, "user": "u1", "stream_options": {"include_usage": True}}
    assert request_body(body)["generationConfig"] == {
        "topP": 0.5, "topK": 7, "stopSequences": ["END"], "presencePenalty": 0.1, "frequencyPenalty": 0.2,
        "candidateCount": 2, "maxOutputTokens": 9, "responseLogprobs": True, "logprobs": 3}



def test_config_extras_and_native_fields() -> None:
    safety = [{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_NONE"}]
    dep = deployment(max_tokens=50, extra={"safety_settings": safety, "top_k": 3})
    out = request_body({"messages": [{"role": "user", "content": "hi"}], "modalities": ["text"],
                        "generationConfig": {"mediaResolution": "MEDIA_RESOLUTION_LOW"}}, dep=dep)
    assert out["safetySettings"] == safety
    assert out["generationConfig"] == {"topK": 3, "maxOutputTokens": 50, "mediaResolution": "MEDIA_RESOLUTION_LOW"}

@pytest.mark.parametrize("choice,config", [
    ("auto", {"mode": "AUTO"}), ("none", {"mode": "NONE"}), ("required", {"mode": "ANY"}),
    ({"type": "function", "function": {"name": "get_weather"}}, {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}),
])
def test_tool_choice(choice: object, config: dict) -> None:
    body = load("openai-chat-tools-stream.request.json") | {"tool_choice": choice}
    assert request_body(body)["toolConfig"] == {"functionCallingConfig": config}


def test_strict_schema_goes_to_parameters_json_schema() -> None:
    schema = {"type": "object", "properties": {"city": {"type": ["string", "null"]}}, "required": ["city"],
              "additionalProperties": False}
    body = {"messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": schema, "strict": True}},
                      {"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {}}}}]}
    declarations = request_body(body)["tools"][0]["functionDeclarations"]
    assert declarations == [{"name": "f", "parametersJsonSchema": schema}, {"name": "g"}]


def test_non_function_tools_rejected() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "web_search"}]}
    with pytest.raises(GatewayError) as info:
        request_body(body)
    assert info.value.param == "tools"


@pytest.mark.parametrize("effort,config", [
    ("none", {"thinkingBudget": 0}), ("low", {"thinkingBudget": 1024, "includeThoughts": True}),
    ("medium", {"thinkingBudget": 8192, "includeThoughts": True}),
    ("high", {"thinkingBudget": 24576, "includeThoughts": True}),
])
def test_reasoning_effort(effort: str, config: dict) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "reasoning_effort": effort}
    assert request_body(body)["generationConfig"]["thinkingConfig"] == config


def test_json_object_mode() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"}}
    assert request_body(body)["generationConfig"] == {"responseMimeType": "application/json"}


def test_image_urls() -> None:
    def body(url: str) -> dict:
        return {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]}

    out = request_body(body("gs://bucket/cat.png"))
    assert out["contents"][0]["parts"] == [{"fileData": {"mimeType": "image/png", "fileUri": "gs://bucket/cat.png"}}]
    files_uri = "https://generativelanguage.googleapis.com/v1beta/files/abc123"
    assert request_body(body(files_uri))["contents"][0]["parts"][0]["fileData"]["fileUri"] == files_uri
    with pytest.raises(GatewayError) as info:
        request_body(body("https://example.com/cat.png"))
    assert info.value.status == 400 and "data: URL" in info.value.message


def test_consecutive_tool_results_share_one_user_turn() -> None:
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": f"f{i}", "arguments": "{}"}} for i in range(2)]
    body = {"messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": "", "tool_calls": calls},
                         {"role": "tool", "tool_call_id": "c0", "content": "plain text"},
                         {"role": "tool", "tool_call_id": "c1", "content": "[1, 2]"}]}
    contents = request_body(body)["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[2]["parts"] == [{"functionResponse": {"name": "f0", "response": {"content": "plain text"}}},
                                    {"functionResponse": {"name": "f1", "response": {"content": "[1, 2]"}}}]


def test_unknown_tool_call_id_is_a_400() -> None:
    body = {"messages": [{"role": "user", "content": "go"}, {"role": "tool", "tool_call_id": "nope", "content": "x"}]}
    with pytest.raises(GatewayError) as info:
        request_body(body)
    assert info.value.status == 400


def test_thought_signature_round_trips_through_the_call_id() -> None:
    signature = base64.b64encode(bytes([250, 251, 252, 253, 254, 255]) + b"sig!").decode()
    assert "+" in signature and "/" in signature and signature.endswith("==")
    call_id = encode_call_id(None, signature)
    assert set(call_id) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")
    assert decode_signature(call_id) == signature
    response = load("gemini-function-call.response.json")
    response["candidates"][0]["content"]["parts"][0]["thoughtSignature"] = signature
    call = PROVIDER.chat_response(deployment(), orjson.dumps(response))["choices"][0]["message"]["tool_calls"][0]
    body = {"messages": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": call["id"], "content": "{}"}]}
    part = request_body(body)["contents"][1]["parts"][0]
    assert part == {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}, "thoughtSignature": signature}


def test_url_version_and_base() -> None:
    request = PROVIDER.chat_request(deployment(api_version="v1"), {"messages": []}, False)
    assert request.url == "https://generativelanguage.googleapis.com/v1/models/gemini-2.5-flash:generateContent"
    request = PROVIDER.chat_request(deployment(api_base="http://127.0.0.1:9/v1beta"), {"messages": []}, False)
    assert request.url == "http://127.0.0.1:9/v1beta/models/gemini-2.5-flash:generateContent"
    request = PROVIDER.chat_request(deployment("models/gemini-2.5-flash@split=1"), {"messages": []}, False)
    assert request.url.endswith("/v1beta/models/gemini-2.5-flash@split=1:generateContent")


def test_registered() -> None:
    assert PROVIDERS["gemini"] is GeminiProvider


# -- responses ---------------------------------------------------------------------------------


def test_generate_response() -> None:
    out = PROVIDER.chat_response(deployment(), raw("gemini-generate.response.json"))
    ChatCompletion.model_validate(out)
    assert out["id"] == "kR9qZ8mUJ6yVqtsP0f3xmQ4" and out["model"] == "gemini-2.5-flash"
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "The capital of France is Paris."}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert out["usage"] == {"prompt_tokens": 14, "completion_tokens": 7, "total_tokens": 21,
                            "prompt_tokens_details": {"cached_tokens": 0},
                            "completion_tokens_details": {"reasoning_tokens": 0}}


def test_function_call_response() -> None:
    out = PROVIDER.chat_response(deployment(), raw("gemini-function-call.response.json"))
    ChatCompletion.model_validate(out)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"  # Gemini said STOP
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert out["usage"]["total_tokens"] == 42


def test_blocked_prompt_is_content_filter() -> None:
    out = PROVIDER.chat_response(deployment(), raw("gemini-blocked-prompt.response.json"))
    ChatCompletion.model_validate(out)
    assert out["choices"] == [{"index": 0, "message": {"role": "assistant", "content": None}, "logprobs": None,
                               "finish_reason": "content_filter"}]
    assert out["usage"]["prompt_tokens"] == 9 and out["usage"]["completion_tokens"] == 0


def _with_finish(reason: str, text: str | None = "partial") -> bytes:
    response = load("gemini-generate.response.json")
    candidate = response["candidates"][0]
    candidate["finishReason"] = reason
    if text is None:
        candidate["content"] = {"role": "model"}
    return orjson.dumps(response)


@pytest.mark.parametrize("reason,expected", [
    ("STOP", "stop"), ("MAX_TOKENS", "length"), ("SAFETY", "content_filter"), ("RECITATION", "content_filter"),
    ("BLOCKLIST", "content_filter"), ("PROHIBITED_CONTENT", "content_filter"), ("SPII", "content_filter"),
    ("IMAGE_SAFETY", "content_filter"), ("OTHER", "stop"), ("LANGUAGE", "stop"),
])
def test_finish_reasons(reason: str, expected: str) -> None:
    out = PROVIDER.chat_response(deployment(), _with_finish(reason))
    assert out["choices"][0]["finish_reason"] == expected


@pytest.mark.parametrize("reason", ["MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "OTHER",
                                    "FINISH_REASON_UNSPECIFIED"])
def test_failed_generation_without_output_raises(reason: str) -> None:
    with pytest.raises(GatewayError) as info:
        PROVIDER.chat_response(deployment(), _with_finish(reason, text=None))
    assert info.value.status == 502 and info.value.retryable and reason in info.value.message


def test_thoughts_and_cache_in_usage() -> None:
    response = load("gemini-generate.response.json")
    response["candidates"][0]["content"]["parts"].insert(0, {"text": "thinking...", "thought": True})
    response["usageMetadata"] = {"promptTokenCount": 100, "cachedContentTokenCount": 60, "candidatesTokenCount": 7,
                                 "thoughtsTokenCount": 30, "toolUsePromptTokenCount": 5, "totalTokenCount": 142}
    out = PROVIDER.chat_response(deployment(), orjson.dumps(response))
    assert out["choices"][0]["message"]["reasoning_content"] == "thinking..."
    assert out["choices"][0]["message"]["content"] == "The capital of France is Paris."
    assert out["usage"] == {"prompt_tokens": 105, "completion_tokens": 37, "total_tokens": 142,
                            "prompt_tokens_details": {"cached_tokens": 60},
                            "completion_tokens_details": {"reasoning_tokens": 30}}


def test_logprobs_response() -> None:
    response = load("gemini-generate.response.json")
    response["candidates"][0]["logprobsResult"] = {
        "topCandidates": [{"candidates": [{"token": "The", "logProbability": -0.1},
                                          {"token": "A", "logProbability": -2.5}]}],
        "chosenCandidates": [{"token": "The", "logProbability": -0.1}]}
    out = PROVIDER.chat_response(deployment(), orjson.dumps(response))
    ChatCompletion.model_validate(out)
    content = out["choices"][0]["logprobs"]["content"]
    assert content[0]["token"] == "The" and content[0]["logprob"] == -0.1
    assert [t["token"] for t in content[0]["top_logprobs"]] == ["The", "A"]


def test_multiple_candidates() -> None:
    response = load("gemini-generate.response.json")
    second = copy.deepcopy(response["candidates"][0])
    second["index"] = 1
    second["content"]["parts"] = [{"text": "Paris."}]
    response["candidates"].append(second)
    out = PROVIDER.chat_response(deployment(), orjson.dumps(response))
    assert [c["message"]["content"] for c in out["choices"]] == ["The capital of France is Paris.", "Paris."]
    assert [c["index"] for c in out["choices"]] == [0, 1]


# -- streams -----------------------------------------------------------------------------------

MODES = ["whole", "bytes", "random-1", "random-2", "random-3"]


@pytest.mark.parametrize("name", ["gemini-stream.sse", "gemini-stream-thinking.sse"])
def test_stream_splits_give_identical_output(name: str) -> None:
    expected = normalize(run_stream(raw(name)))
    for mode in MODES[1:]:
        assert normalize(run_stream(raw(name), mode)) == expected


def test_stream_text_usage_and_finish() -> None:
    chunks = run_stream(raw("gemini-stream.sse"))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    nonstream = PROVIDER.chat_response(deployment(), raw("gemini-generate.response.json"))
    assert joined(chunks) == nonstream["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]] == [None, None, "stop"]
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == nonstream["usage"]
    assert {c["id"] for c in chunks} == {"kR9qZ8mUJ6yVqtsP0f3xmQ4"}


def test_thinking_stream() -> None:
    chunks = run_stream(raw("gemini-stream-thinking.sse"))
    assert joined(chunks, "reasoning_content").startswith("**Computing the product**")
    assert joined(chunks) == "27 × 453 = 12,231."
    usage = chunks[-1]["usage"]
    assert usage["completion_tokens"] == 152 and usage["completion_tokens_details"]["reasoning_tokens"] == 140
    assert usage["total_tokens"] == 163


def _function_call_sse() -> bytes:
    return b"data: " + orjson.dumps(load("gemini-function-call.response.json")) + b"\r\n\r\n"


def test_function_call_stream() -> None:
    chunks = run_stream(_function_call_sse())
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    call = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert call["index"] == 0 and call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert chunks[1]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize("mode", MODES)
def test_truncated_stream(mode: str) -> None:
    data = raw("gemini-stream.sse")
    cut = data[: data.index(b"\r\n\r\n") + 4]  # first event only: no finishReason
    with pytest.raises(GatewayError) as info:
        run_stream(cut, mode)
    assert info.value.code == "stream_truncated" and info.value.retryable


def test_empty_stream_is_truncated() -> None:
    with pytest.raises(GatewayError) as info:
        run_stream(b"")
    assert info.value.code == "stream_truncated"


def test_in_band_error_event() -> None:
    _, _, body = http_transcript("gemini-error-503.http")
    data = raw("gemini-stream.sse").split(b"\r\n\r\n")[0] + b"\r\n\r\ndata: " + orjson.dumps(orjson.loads(body)) + b"\r\n\r\n"
    with pytest.raises(GatewayError) as info:
        run_stream(data)
    assert (info.value.status, info.value.code, info.value.retryable) == (503, "overloaded", True)


def test_blocked_prompt_stream() -> None:
    data = b"data: " + orjson.dumps(load("gemini-blocked-prompt.response.json")) + b"\r\n\r\n"
    chunks = run_stream(data)
    assert chunks[0]["choices"][0]["finish_reason"] == "content_filter"
    assert chunks[-1]["usage"]["prompt_tokens"] == 9


def test_malformed_event() -> None:
    with pytest.raises(GatewayError) as info:
        run_stream(b"data: {not json\r\n\r\n")
    assert info.value.code == "malformed_stream"


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name,status,code,retryable,retry_after", [
    ("gemini-error-429.http", 429, "rate_limit_exceeded", True, 37.0),
    ("gemini-error-400-api-key.http", 401, "invalid_api_key", False, None),
    ("gemini-error-400-too-long.http", 400, "context_length_exceeded", False, None),
    ("gemini-error-503.http", 503, "overloaded", True, None),
])
def test_errors(name: str, status: int, code: str, retryable: bool, retry_after: float | None) -> None:
    upstream_status, headers, body = http_transcript(name)
    error = PROVIDER.error(upstream_status, headers, body)
    assert (error.status, error.code, error.retryable, error.retry_after) == (status, code, retryable, retry_after)
    assert error.message.startswith("gemini: ")
    if retry_after:
        assert error.headers["retry-after"] == "37"


def test_per_day_quota_is_not_retryable() -> None:
    status, headers, body = http_transcript("gemini-error-429.http")
    body = body.replace(b"GenerateRequestsPerMinutePerProjectPerModel", b"GenerateRequestsPerDayPerProjectPerModel")
    error = PROVIDER.error(status, headers, body)
    assert (error.status, error.code, error.retryable) == (429, "insufficient_quota", False)


def test_non_json_error_body() -> None:
    error = PROVIDER.error(502, {}, b"<html>bad gateway</html>")
    assert error.status == 502 and error.retryable


# -- embeddings --------------------------------------------------------------------------------


def embed_dep() -> Deployment:
    return deployment("text-embedding-004")


def test_embed_request_matches_transcript() -> None:
    body = {"model": "x", "input": "hello world", "dimensions": 8, "task_type": "RETRIEVAL_DOCUMENT"}
    request = PROVIDER.embeddings_request(embed_dep(), body)
    assert request.url.endswith("/v1beta/models/text-embedding-004:embedContent")
    assert orjson.loads(request.body) == load("gemini-embed.request.json")


def test_batch_embed_request_matches_transcript() -> None:
    request = PROVIDER.embeddings_request(embed_dep(), load("openai-embeddings.request.json"))
    assert request.url.endswith("/v1beta/models/text-embedding-004:batchEmbedContents")
    assert orjson.loads(request.body) == load("gemini-batch-embed.request.json")


def test_embed_responses() -> None:
    body = load("openai-embeddings.request.json")
    out = PROVIDER.embeddings_response(embed_dep(), raw("gemini-batch-embed.response.json"), body)
    expected = load("openai-embeddings.response.json")
    assert [d["embedding"] for d in out["data"]] == [d["embedding"] for d in expected["data"]]
    assert [d["index"] for d in out["data"]] == [0, 1] and out["usage"]["prompt_tokens"] > 0
    out = PROVIDER.embeddings_response(embed_dep(), raw("gemini-batch-embed.response.json"),
                                       body | {"encoding_format": "base64"})
    assert [d["embedding"] for d in out["data"]] == [d["embedding"] for d in load("openai-embeddings-base64.response.json")["data"]]
    single = PROVIDER.embeddings_response(embed_dep(), raw("gemini-embed.response.json"), {"input": "hello world"})
    assert single["data"][0]["embedding"] == load("gemini-embed.response.json")["embedding"]["values"]
    packed = base64.b64decode(PROVIDER.embeddings_response(embed_dep(), raw("gemini-embed.response.json"),
                                                           {"input": "a", "encoding_format": "base64"})["data"][0]["embedding"])
    assert struct.unpack("<8f", packed)[0] == pytest.approx(0.0123)


def test_token_inputs_rejected() -> None:
    with pytest.raises(GatewayError) as info:
        PROVIDER.embeddings_request(embed_dep(), {"input": [[1, 2, 3]]})
    assert info.value.status == 400 and info.value.param == "input"


# -- through the mock upstream -----------------------------------------------------------------


@pytest.fixture
async def upstream():
    app = web.Application()
    recorder = Recorder()
    app.add_routes(mock_gemini.routes(recorder))
    server = TestServer(app)
    await server.start_server()
    server.recorder = recorder  # type: ignore[attr-defined]
    yield server
    await server.close()


async def send(request) -> tuple[int, dict, list[bytes]]:
    async with ClientSession() as session:
        async with session.request(request.method, request.url, headers=request.headers, data=request.body) as resp:
            return resp.status, dict(resp.headers), [chunk async for chunk in resp.content.iter_any()]


def mock_dep(server: TestServer, model: str = "gemini-2.5-flash", **params: object) -> Deployment:
    return deployment(model, api_base=str(server.make_url("")), **params)


async def test_mock_generate_byte_for_byte(upstream: TestServer) -> None:
    dep = mock_dep(upstream)
    status, _, body = await send(PROVIDER.chat_request(dep, load("openai-chat.request.json"), False))
    assert status == 200 and b"".join(body) == raw("gemini-generate.response.json")
    assert upstream.recorder.requests[0]["headers"]["x-goog-api-key"] == "goog-key"


@pytest.mark.parametrize("split", ["", "@split=1", "@split=random"])
async def test_mock_stream(upstream: TestServer, split: str) -> None:
    dep = mock_dep(upstream, "gemini-2.5-flash" + split)
    status, headers, body = await send(PROVIDER.chat_request(dep, load("openai-chat-stream.request.json"), True))
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    assert b"".join(body) == raw("gemini-stream.sse")
    decoder = PROVIDER.chat_stream_decoder(dep, {})
    chunks = [c for piece in body for c in decoder.feed(piece)] + decoder.close()
    assert joined(chunks) == "The capital of France is Paris."


async def test_mock_tools_and_thinking(upstream: TestServer) -> None:
    dep = mock_dep(upstream)
    _, _, body = await send(PROVIDER.chat_request(dep, load("openai-chat-tools-stream.request.json"), False))
    assert b"".join(body) == raw("gemini-function-call.response.json")
    _, _, body = await send(PROVIDER.chat_request(dep, load("openai-chat-tools-stream.request.json"), True))
    chunks = run_stream(b"".join(body))
    assert chunks[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"] == "get_weather"
    thinking = {"messages": [{"role": "user", "content": "27*453?"}], "reasoning_effort": "low"}
    _, _, body = await send(PROVIDER.chat_request(dep, thinking, True))
    assert b"".join(body) == raw("gemini-stream-thinking.sse")


@pytest.mark.parametrize("option,status,code", [("@error=429", 429, "rate_limit_exceeded"),
                                                ("@error=400-api-key", 401, "invalid_api_key"),
                                                ("@error=gemini-error-503.http", 503, "overloaded")])
async def test_mock_errors(upstream: TestServer, option: str, status: int, code: str) -> None:
    dep = mock_dep(upstream, "gemini-2.5-flash" + option)
    upstream_status, headers, body = await send(PROVIDER.chat_request(dep, load("openai-chat.request.json"), False))
    error = PROVIDER.error(upstream_status, {k.lower(): v for k, v in headers.items()}, b"".join(body))
    assert (error.status, error.code) == (status, code)


async def test_mock_stream_failures(upstream: TestServer) -> None:
    for option, code in (("@truncate", "stream_truncated"), ("@midstream_error", "overloaded")):
        dep = mock_dep(upstream, "gemini-2.5-flash" + option)
        _, _, body = await send(PROVIDER.chat_request(dep, load("openai-chat-stream.request.json"), True))
        with pytest.raises(GatewayError) as info:
            run_stream(b"".join(body))
        assert info.value.code == code


async def test_mock_embeddings(upstream: TestServer) -> None:
    dep = mock_dep(upstream, "text-embedding-004")
    body = load("openai-embeddings.request.json")
    _, _, data = await send(PROVIDER.embeddings_request(dep, body))
    assert b"".join(data) == raw("gemini-batch-embed.response.json")
    _, _, data = await send(PROVIDER.embeddings_request(dep, {"input": "hello world"}))
    assert b"".join(data) == raw("gemini-embed.response.json")


async def test_mock_requires_key(upstream: TestServer) -> None:
    dep = Deployment(id="x", model_name="g", provider="gemini", model="gemini-2.5-flash",
                     params=LitellmParams(model="gemini/gemini-2.5-flash", api_base=str(upstream.make_url(""))),
                     info=ModelInfo(), extra={})
    status, _, body = await send(PROVIDER.chat_request(dep, load("openai-chat.request.json"), False))
    assert status == 400 and PROVIDER.error(status, {}, b"".join(body)).code == "invalid_api_key"
