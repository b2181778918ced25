"""Vertex AI: Gemini's translation (inherited) behind Vertex URLs, bearer auth and :predict embeddings."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import orjson
import pytest
from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from fastgw.config.schema import Deployment, LitellmParams, ModelInfo
from fastgw.errors import GatewayError
from fastgw.providers import PROVIDERS
from fastgw.providers.gemini import GeminiProvider
from fastgw.providers.vertex_ai import VertexAIProvider

TESTS = Path(__file__).resolve().parents[1]
TRANSCRIPTS = Path(os.environ.get("FASTGW_TRANSCRIPTS") or TESTS.parents[1] / "shared" / "reference" / "transcripts")
sys.path.insert(0, str(TESTS / "mocks"))
import mock_gemini  # noqa: E402
from common import Recorder, http_transcript  # noqa: E402

PROVIDER = VertexAIProvider()


def load(name: str) -> dict:
    return orjson.loads((TRANSCRIPTS / name).read_bytes())


def raw(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def deployment(model: str = "gemini-2.5-flash", **params: object) -> Deployment:
    params.setdefault("vertex_project", "my-proj")
    params.setdefault("api_key", "ya29.token")
    return Deployment(id="vertex-test", model_name="v", provider="vertex_ai", model=model,
                      params=LitellmParams(model=f"vertex_ai/{model}", **params), info=ModelInfo(), extra={})


def test_registered_and_subclass() -> None:
    assert PROVIDERS["vertex_ai"] is VertexAIProvider
    assert issubclass(VertexAIProvider, GeminiProvider)


@pytest.mark.parametrize("location,url", [
    (None, "https://us-central1-aiplatform.googleapis.com/v1/projects/my-proj/locations/us-central1/publishers/"
           "google/models/gemini-2.5-flash:generateContent"),
    ("europe-west4", "https://europe-west4-aiplatform.googleapis.com/v1/projects/my-proj/locations/europe-west4/"
                     "publishers/google/models/gemini-2.5-flash:generateContent"),
    ("global", "https://aiplatform.googleapis.com/v1/projects/my-proj/locations/global/publishers/google/models/"
               "gemini-2.5-flash:generateContent"),
])
def test_urls(location: str | None, url: str) -> None:
    request = PROVIDER.chat_request(deployment(vertex_location=location), load("openai-chat.request.json"), False)
    assert request.url == url
    assert request.headers["authorization"] == "Bearer ya29.token"
    assert "x-goog-api-key" not in request.headers


def test_stream_url_and_api_base() -> None:
    request = PROVIDER.chat_request(deployment(api_base="http://127.0.0.1:9", api_version="v1beta1"), {"messages": []},
                                    True)
    assert request.url == ("http://127.0.0.1:9/v1beta1/projects/my-proj/locations/us-central1/publishers/google/"
                           "models/gemini-2.5-flash:streamGenerateContent?alt=sse")


def test_body_is_geminis() -> None:
    body = load("openai-chat.request.json") | {"n": 1, "reasoning_effort": "none"}
    assert orjson.loads(PROVIDER.chat_request(deployment(), body, False).body) == load("gemini-generate.request.json")


def test_credentials() -> None:
    request = PROVIDER.chat_request(deployment(api_key=None, vertex_credentials="ya29.other"), {"messages": []}, False)
    assert request.headers["authorization"] == "Bearer ya29.other"
    with pytest.raises(GatewayError) as info:
        PROVIDER.chat_request(deployment(api_key=None, vertex_credentials='{"type": "service_account"}'),
                              {"messages": []}, False)
    assert info.value.code == "config_error"
    with pytest.raises(GatewayError) as info:
        PROVIDER.chat_request(deployment(vertex_project=None), {"messages": []}, False)
    assert info.value.code == "config_error" and "vertex_project" in info.value.message


def test_responses_streams_and_errors_are_geminis() -> None:
    out = PROVIDER.chat_response(deployment(), raw("gemini-generate.response.json"))
    assert out["choices"][0]["message"]["content"] == "The capital of France is Paris."
    decoder = PROVIDER.chat_stream_decoder(deployment(), {})
    chunks = decoder.feed(raw("gemini-stream.sse")) + decoder.close()
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]) == out["choices"][0]["message"]["content"]
    status, headers, body = http_transcript("gemini-error-429.http")
    error = PROVIDER.error(status, headers, body)
    assert (error.status, error.code, error.retry_after) == (429, "rate_limit_exceeded", 37.0)
    assert error.message.startswith("vertex_ai: ")


def test_predict_embeddings() -> None:
    body = load("openai-embeddings.request.json") | {"task_type": "RETRIEVAL_DOCUMENT"}
    request = PROVIDER.embeddings_request(deployment("text-embedding-005"), body)
    assert request.url.endswith("/publishers/google/models/text-embedding-005:predict")
    assert orjson.loads(request.body) == {
        "instances": [{"content": "hello world", "task_type": "RETRIEVAL_DOCUMENT"},
                      {"content": "goodbye", "task_type": "RETRIEVAL_DOCUMENT"}],
        "parameters": {"outputDimensionality": 8}}
    vectors = [e["values"] for e in load("gemini-batch-embed.response.json")["embeddings"]]
    answer = {"predictions": [{"embeddings": {"values": v, "statistics": {"token_count": 2, "truncated": False}}}
                              for v in vectors]}
    out = PROVIDER.embeddings_response(deployment("text-embedding-005"), orjson.dumps(answer),
                                       body | {"encoding_format": "base64"})
    assert [d["embedding"] for d in out["data"]] == [d["embedding"] for d in load("openai-embeddings-base64.response.json")["data"]]
    assert out["usage"] == {"prompt_tokens": 4, "total_tokens": 4}


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


async def send(request) -> tuple[int, bytes]:
    async with ClientSession() as session:
        async with session.request(request.method, request.url, headers=request.headers, data=request.body) as resp:
            return resp.status, await resp.read()


async def test_mock_vertex_paths(upstream: TestServer) -> None:
    dep = deployment("gemini-2.5-flash@split=3", api_base=str(upstream.make_url("")))
    status, body = await send(PROVIDER.chat_request(dep, load("openai-chat-stream.request.json"), True))
    assert status == 200 and body == raw("gemini-stream.sse")
    seen = upstream.recorder.requests[-1]
    assert seen["path"].startswith("/v1/projects/my-proj/locations/us-central1/publishers/google/models/")
    assert seen["headers"]["authorization"] == "Bearer ya29.token"
    dep = deployment("text-embedding-005", api_base=str(upstream.make_url("")))
    body = load("openai-embeddings.request.json")
    status, data = await send(PROVIDER.embeddings_request(dep, body))
    out = PROVIDER.embeddings_response(dep, data, body)
    assert [d["embedding"] for d in out["data"]] == [d["embedding"] for d in load("openai-embeddings.response.json")["data"]]
