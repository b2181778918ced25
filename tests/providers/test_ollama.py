"""Ollama native provider against the ollama-* transcripts, plus the mock upstream that serves them."""
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
from fastgw.providers.ollama import OllamaProvider
from fastgw.providers.openai_compat import OpenAICompatProvider
from chunking import pieces

TESTS = Path(__file__).resolve().parents[1]
TRANSCRIPTS = Path(os.environ.get("FASTGW_TRANSCRIPTS") or TESTS.parents[1] / "shared" / "reference" / "transcripts")
sys.path.insert(0, str(TESTS / "mocks"))
import mock_ollama  # noqa: E402
from common import Recorder, http_transcript  # noqa: E402

PROVIDER = OllamaProvider()
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="


def load(name: str) -> dict:
    return orjson.loads((TRANSCRIPTS / name).read_bytes())


def raw(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def deployment(model: str = "llama3.2", drop_params: bool = False, **params: object) -> Deployment:
    return Deployment(id="ollama-test", model_name="o", provider="ollama", model=model,
                      params=LitellmParams(model=f"ollama/{model}", **params), info=ModelInfo(), extra={},
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
    """Generated ids differ run to run; everything else must not."""
    chunks = copy.deepcopy(chunks)
    for chunk in chunks:
        chunk["id"] = "ID"
        for choice in chunk["choices"]:
            for call in choice["delta"].get("tool_calls") or ():
                call["id"] = "CALL"
    return chunks


def joined(chunks: list[dict], field: str = "content") -> str:
    return "".join(c["choices"][0]["delta"].get(field) or "" for c in chunks if c["choices"])


# -- requests ----------------------------------------------------------------------------------


def test_chat_request_matches_transcript() -> None:
    body = load("openai-chat.request.json") | {"top_p": 0.9}
    request = PROVIDER.chat_request(deployment(), body, False)
    assert request.url == "http://localhost:11434/api/chat"
    assert "authorization" not in request.headers
    assert orjson.loads(request.body) == load("ollama-chat.request.json")


def test_stream_request_matches_transcript() -> None:
    body = {"model": "x", "messages": [{"role": "user", "content": "What is the capital of France?"}], "stream": True,
            "stream_options": {"include_usage": True}}
    assert request_body(body, stream=True) == load("ollama-chat-stream.request.json")  # stream defaults to true


def test_tools_request_matches_transcript() -> None:
    assert request_body(load("openai-chat-tools-stream.request.json")) == load("ollama-chat-tools.request.json")


def test_multimodal_history_and_schema() -> None:
    body = load("openai-chat-multimodal-json.request.json")
    out = request_body(body, dep=deployment(drop_params=True))
    system, user, assistant, tool = out["messages"]
    assert system == {"role": "system", "content": "Answer in JSON."}
    assert user == {"role": "user", "content": "Describe this image and check the weather there.", "images": [PNG]}
    assert assistant == {"role": "assistant", "content": "",
                         "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
    assert tool == {"role": "tool", "content": '{"temp_c":18,"sky":"clear"}', "tool_name": "get_weather"}
    assert out["format"] == body["response_format"]["json_schema"]["schema"]
    assert out["options"] == {"num_predict": 200}
    assert "n" not in out and "parallel_tool_calls" not in out


def test_json_mode_think_and_options() -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "json_object"},
            "reasoning_effort": "low", "top_k": 20, "presence_penalty": 0.5, "stop": "END", "num_ctx": 8192,
            "keep_alive": "10m", "options": {"repeat_penalty": 1.1}}
    out = request_body(body)
    assert out["format"] == "json" and out["think"] is True and out["keep_alive"] == "10m"
    assert out["options"] == {"top_k": 20, "presence_penalty": 0.5, "stop": ["END"], "num_ctx": 8192,
                              "repeat_penalty": 1.1}
    assert request_body(body | {"reasoning_effort": "none"})["think"] is False


def test_tool_choice() -> None:
    body = load("openai-chat-tools-stream.request.json")
    assert "tools" not in request_body(body | {"tool_choice": "none"})
    with pytest.raises(GatewayError) as info:
        request_body(body | {"tool_choice": "required"})
    assert info.value.param == "tool_choice"
    assert "tools" in request_body(body | {"tool_choice": "required"}, dep=deployment(drop_params=True))


@pytest.mark.parametrize("param,value", [("n", 2), ("logprobs", True), ("logit_bias", {"1": 2}),
                                         ("parallel_tool_calls", False)])
def test_unsupported_params(param: str, value: object) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], param: value}
    with pytest.raises(GatewayError) as info:
        request_body(body)
    assert (info.value.status, info.value.param) == (400, param) and "'ollama'" in info.value.message
    request_body(body, dep=deployment(drop_params=True))


def test_https_images_rejected() -> None:
    body = {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]}
    with pytest.raises(GatewayError) as info:
        request_body(body)
    assert info.value.status == 400 and "data: URL" in info.value.message


def test_registration_keeps_openai_compatible_preset() -> None:
    assert PROVIDERS["ollama"] is OllamaProvider
    assert issubclass(PROVIDERS["ollama_chat"], OpenAICompatProvider)


def test_api_base_and_key() -> None:
    request = PROVIDER.chat_request(deployment(api_base="https://ollama.com/api", api_key="k"), {"messages": []}, True)
    assert request.url == "https://ollama.com/api/chat" and request.headers["authorization"] == "Bearer k"


# -- responses ---------------------------------------------------------------------------------


def test_chat_response() -> None:
    out = PROVIDER.chat_response(deployment(), raw("ollama-chat.response.json"))
    ChatCompletion.model_validate(out)
    assert out["model"] == "llama3.2" and out["created"] == 1735689601
    assert out["choices"][0]["message"] == {"role": "assistant", "content": "The capital of France is Paris."}
    assert out["choices"][0]["finish_reason"] == "stop"
    assert (out["usage"]["prompt_tokens"], out["usage"]["completion_tokens"], out["usage"]["total_tokens"]) == (26, 8, 34)


def test_tool_call_response() -> None:
    out = PROVIDER.chat_response(deployment(), raw("ollama-chat-tools.response.json"))
    ChatCompletion.model_validate(out)
    choice = out["choices"][0]
    assert choice["finish_reason"] == "tool_calls"  # done_reason said stop
    assert choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["id"].startswith("call_") and call["function"]["name"] == "get_weather"
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert out["usage"]["total_tokens"] == 155


def test_length_thinking_and_missing_counts() -> None:
    answer = load("ollama-chat.response.json")
    answer["done_reason"] = "length"
    answer["message"]["thinking"] = "hmm"
    del answer["prompt_eval_count"]
    out = PROVIDER.chat_response(deployment(), orjson.dumps(answer))
    assert out["choices"][0]["finish_reason"] == "length"
    assert out["choices"][0]["message"]["reasoning_content"] == "hmm"
    assert out["usage"]["prompt_tokens"] == 0 and out["usage"]["completion_tokens"] == 8


# -- streams -----------------------------------------------------------------------------------

MODES = ["whole", "bytes", "random-1", "random-2", "random-3"]


@pytest.mark.parametrize("data", [raw("ollama-chat-stream.ndjson"), mock_ollama.tool_stream()])
def test_stream_splits_give_identical_output(data: bytes) -> None:
    expected = normalize(run_stream(data))
    for mode in MODES[1:]:
        assert normalize(run_stream(data, mode)) == expected


def test_text_stream() -> None:
    chunks = run_stream(raw("ollama-chat-stream.ndjson"))
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    nonstream = PROVIDER.chat_response(deployment(), raw("ollama-chat.response.json"))
    assert joined(chunks) == nonstream["choices"][0]["message"]["content"]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "The"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"] == nonstream["usage"]
    assert len({c["id"] for c in chunks}) == 1


def test_tool_stream() -> None:
    chunks = run_stream(mock_ollama.tool_stream())
    call = chunks[0]["choices"][0]["delta"]["tool_calls"][0]
    assert call["index"] == 0 and call["id"].startswith("call_")
    assert orjson.loads(call["function"]["arguments"]) == {"city": "Paris"}
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"]["prompt_tokens"] == 122


def test_last_line_without_newline() -> None:
    chunks = run_stream(raw("ollama-chat-stream.ndjson").rstrip(b"\n"))
    assert chunks[-1]["usage"]["completion_tokens"] == 8


@pytest.mark.parametrize("mode", MODES)
def test_truncated_stream(mode: str) -> None:
    lines = raw("ollama-chat-stream.ndjson").split(b"\n")
    with pytest.raises(GatewayError) as info:
        run_stream(b"\n".join(lines[:-2]) + b"\n", mode)
    assert info.value.code == "stream_truncated"


@pytest.mark.parametrize("mode", MODES)
def test_in_band_error_line(mode: str) -> None:
    with pytest.raises(GatewayError) as info:
        run_stream(raw("ollama-chat-stream-error.ndjson"), mode)
    assert (info.value.status, info.value.code, info.value.retryable) == (500, "server_error", True)
    assert "unexpected EOF" in info.value.message


# -- errors and embeddings ---------------------------------------------------------------------


def test_404_unknown_model() -> None:
    status, headers, body = http_transcript("ollama-error-404.http")
    error = PROVIDER.error(status, headers, body)
    assert (error.status, error.code, error.retryable) == (404, "model_not_found", False)
    assert error.message == 'ollama: model "llama9" not found, try pulling it first'
    assert PROVIDER.error(500, {}, b'{"error":"runner crashed"}').retryable


def test_embed_request_and_response() -> None:
    body = load("openai-embeddings.request.json")
    del body["dimensions"]
    request = PROVIDER.embeddings_request(deployment("all-minilm"), body)
    assert request.url == "http://localhost:11434/api/embed"
    assert orjson.loads(request.body) == load("ollama-embed.request.json")
    out = PROVIDER.embeddings_response(deployment("all-minilm"), raw("ollama-embed.response.json"), body)
    assert [d["embedding"] for d in out["data"]] == [d["embedding"] for d in load("openai-embeddings.response.json")["data"]]
    assert out["usage"] == {"prompt_tokens": 6, "total_tokens": 6}
    out = PROVIDER.embeddings_response(deployment("all-minilm"), raw("ollama-embed.response.json"),
                                       body | {"encoding_format": "base64"})
    assert out["data"] == load("openai-embeddings-base64.response.json")["data"]


# -- through the mock upstream -----------------------------------------------------------------


@pytest.fixture
async def upstream():
    app = web.Application()
    app.add_routes(mock_ollama.routes(Recorder()))
    server = TestServer(app)
    await server.start_server()
    yield server
    await server.close()


async def send(request) -> tuple[int, dict, list[bytes]]:
    async with ClientSession() as session:
        async with session.request(request.method, request.url, headers=request.headers, data=request.body) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, \
                [chunk async for chunk in resp.content.iter_any()]


def mock_dep(server: TestServer, model: str = "llama3.2") -> Deployment:
    return deployment(model, api_base=str(server.make_url("")))


@pytest.mark.parametrize("split", ["", "@split=1", "@split=random@delay=0.0001"])
async def test_mock_stream(upstream: TestServer, split: str) -> None:
    dep = mock_dep(upstream, "llama3.2" + split)
    status, headers, body = await send(PROVIDER.chat_request(dep, load("openai-chat-stream.request.json"), True))
    assert status == 200 and headers["content-type"].startswith("application/x-ndjson")
    assert b"".join(body) == raw("ollama-chat-stream.ndjson")
    decoder = PROVIDER.chat_stream_decoder(dep, {})
    chunks = [c for piece in body for c in decoder.feed(piece)] + decoder.close()
    assert joined(chunks) == "The capital of France is Paris."


async def test_mock_chat_tools_embed(upstream: TestServer) -> None:
    dep = mock_dep(upstream)
    _, _, body = await send(PROVIDER.chat_request(dep, load("openai-chat.request.json"), False))
    assert b"".join(body) == raw("ollama-chat.response.json")
    _, _, body = await send(PROVIDER.chat_request(dep, load("openai-chat-tools-stream.request.json"), False))
    assert b"".join(body) == raw("ollama-chat-tools.response.json")
    _, _, body = await send(PROVIDER.embeddings_request(mock_dep(upstream, "all-minilm"),
                                                        load("openai-embeddings.request.json")))
    assert b"".join(body) == raw("ollama-embed.response.json")


async def test_mock_failures(upstream: TestServer) -> None:
    status, headers, body = await send(PROVIDER.chat_request(mock_dep(upstream, "llama9@error=404"),
                                                             load("openai-chat.request.json"), False))
    assert PROVIDER.error(status, headers, b"".join(body)).code == "model_not_found"
    for option, code in (("@truncate", "stream_truncated"), ("@midstream_error", "server_error")):
        _, _, body = await send(PROVIDER.chat_request(mock_dep(upstream, "llama3.2" + option),
                                                      load("openai-chat-stream.request.json"), True))
        with pytest.raises(GatewayError) as info:
            run_stream(b"".join(body))
        assert info.value.code == code
