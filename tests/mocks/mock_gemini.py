"""Gemini upstream (AI Studio ``/v1beta|/v1/models/{model}:{method}``) and Vertex AI
(``/v1|/v1beta1/projects/{p}/locations/{l}/publishers/google/models/{model}:{method}``),
serving the Gemini transcripts.

The model id is in the URL path, so scenario options ride there:
``gemini-2.5-flash@split=1@delay=0.01``. Options: ``split``/``delay`` (chunked writes),
``error=<name>`` (a ``gemini-error-*.http`` transcript; ``error=429`` is short for
``gemini-error-429.http``, ``error=400-api-key`` for ``gemini-error-400-api-key.http``),
``blocked`` (the blocked-prompt answer), ``truncate`` (the stream cut in half),
``midstream_error`` (first stream event, then an ``{"error"}`` event built from the 503
transcript's body; the reference marks such events unconfirmed).

Answers, byte for byte: ``generateContent`` -> ``gemini-function-call.response.json`` when
the request declares tools and its last turn is not a function response, else
``gemini-generate.response.json``. ``streamGenerateContent?alt=sse`` ->
``gemini-stream-thinking.sse`` when ``includeThoughts`` is on, else ``gemini-stream.sse``
(tool requests get the function-call response framed as one SSE event: no streamed
tool transcript exists); without ``alt=sse`` -> ``gemini-stream-nosse.json``.
``embedContent`` / ``batchEmbedContents`` -> the embed transcripts (the batch answer is
resized to the request, cycling the transcript's vectors). Vertex ``:predict`` (embeddings)
answers with the same vectors in Vertex's ``predictions`` shape. Requests without an API
key (``x-goog-api-key`` / ``?key=``) or bearer token get the 400 API-key transcript.
"""
from __future__ import annotations

import orjson
from aiohttp import web

from common import Recorder, error_response, http_transcript, scenario, stream_response, transcript

SSE = "text/event-stream"
JSON = "application/json; charset=UTF-8"


def error_name(value: str) -> str:
    return value if value.endswith(".http") else f"gemini-error-{value}.http"


def answers_function_call(body: dict) -> bool:
    contents = body.get("contents") or []
    last = contents[-1] if contents else {}
    return any("functionResponse" in p for p in last.get("parts") or () if isinstance(p, dict))


def wants_tool_call(body: dict) -> bool:
    return bool(body.get("tools")) and not answers_function_call(body)


def compact(data: bytes) -> bytes:
    return orjson.dumps(orjson.loads(data))


def stream_body(body: dict, options: dict[str, str]) -> bytes:
    if "midstream_error" in options:
        first = transcript("gemini-stream.sse").split(b"\r\n\r\n")[0]
        _, _, error_body = http_transcript("gemini-error-503.http")
        return first + b"\r\n\r\ndata: " + compact(error_body) + b"\r\n\r\n"
    if wants_tool_call(body):
        data = b"data: " + compact(transcript("gemini-function-call.response.json")) + b"\r\n\r\n"
    elif ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts"):
        data = transcript("gemini-stream-thinking.sse")
    else:
        data = transcript("gemini-stream.sse")
    if "truncate" in options:
        data = data[: len(data) // 2]
    return data


def batch_embed_answer(count: int) -> bytes:
    data = transcript("gemini-batch-embed.response.json")
    vectors = orjson.loads(data)["embeddings"]
    if count == len(vectors):
        return data
    return orjson.dumps({"embeddings": [vectors[i % len(vectors)] for i in range(count)]})


def predict_answer(count: int) -> bytes:
    vectors = orjson.loads(transcript("gemini-batch-embed.response.json"))["embeddings"]
    predictions = [{"embeddings": {"values": vectors[i % len(vectors)]["values"],
                                   "statistics": {"token_count": 2, "truncated": False}}} for i in range(count)]
    return orjson.dumps({"predictions": predictions})


def authorised(request: web.Request) -> bool:
    return bool(request.headers.get("x-goog-api-key") or request.query.get("key")
                or request.headers.get("authorization", "").startswith("Bearer "))


def routes(recorder: Recorder) -> list[web.RouteDef]:
    async def model_method(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        recorder.record(request, raw)
        model, _, method = request.match_info["target"].rpartition(":")
        _, options = scenario(model)
        if "error" in options:
            return error_response(error_name(options["error"]))
        if not authorised(request):
            return error_response("gemini-error-400-api-key.http")
        body = orjson.loads(raw) if raw else {}
        if method == "generateContent":
            if "blocked" in options:
                name = "gemini-blocked-prompt.response.json"
            else:
                name = "gemini-function-call.response.json" if wants_tool_call(body) else "gemini-generate.response.json"
            return web.Response(body=transcript(name), headers={"content-type": JSON})
        if method == "streamGenerateContent":
            if request.query.get("alt") != "sse":
                return await stream_response(request, transcript("gemini-stream-nosse.json"), JSON, options)
            if "blocked" in options:
                data = b"data: " + compact(transcript("gemini-blocked-prompt.response.json")) + b"\r\n\r\n"
            else:
                data = stream_body(body, options)
            return await stream_response(request, data, SSE, options)
        if method == "embedContent":
            return web.Response(body=transcript("gemini-embed.response.json"), headers={"content-type": JSON})
        if method == "batchEmbedContents":
            answer = batch_embed_answer(len(body.get("requests") or ()))
            return web.Response(body=answer, headers={"content-type": JSON})
        if method == "predict":
            return web.Response(body=predict_answer(len(body.get("instances") or ())), headers={"content-type": JSON})
        return web.json_response({"error": {"code": 404, "message": f"method {method} not found",
                                            "status": "NOT_FOUND"}}, status=404)

    return [
        web.post("/{version:v1beta|v1|v1alpha}/models/{target}", model_method),
        web.post("/{version:v1|v1beta1}/projects/{project}/locations/{location}/publishers/google/models/{target}",
                 model_method),
    ]
