"""Ollama native upstream (``POST /api/chat``, ``POST /api/embed``, ``GET /api/tags``),
serving the Ollama transcripts.

Scenario options on the model id (in the body): ``split``/``delay`` (chunked writes),
``error=<name>`` (an ``ollama-error-*.http`` transcript; ``error=404`` is short for
``ollama-error-404.http``), ``midstream_error`` (``ollama-chat-stream-error.ndjson``),
``truncate`` (the stream without its final ``done: true`` line).

``/api/chat`` streams unless the body says ``"stream": false`` (Ollama's default):
``ollama-chat-stream.ndjson`` byte for byte. Non-streaming: ``ollama-chat-tools.response.json``
when the request has tools and its last message is not a tool result, else
``ollama-chat.response.json``. A streamed tool request gets the tools answer as two NDJSON
lines (the tool-call message with ``done: false``, then the ``done`` line with the counters;
no streamed tool transcript exists). Embeds answer ``ollama-embed.response.json`` (resized to
the request, cycling its vectors).
"""
from __future__ import annotations

import orjson
from aiohttp import web

from common import Recorder, error_response, scenario, stream_response, transcript

NDJSON = "application/x-ndjson"


def error_name(value: str) -> str:
    return value if value.endswith(".http") else f"ollama-error-{value}.http"


def wants_tool_call(body: dict) -> bool:
    messages = body.get("messages") or []
    return bool(body.get("tools")) and not (messages and messages[-1].get("role") == "tool")


def tool_stream() -> bytes:
    answer = orjson.loads(transcript("ollama-chat-tools.response.json"))
    first = {"model": answer["model"], "created_at": answer["created_at"], "message": answer["message"], "done": False}
    last = {k: v for k, v in answer.items() if k != "message"}
    last["message"] = {"role": "assistant", "content": ""}
    return orjson.dumps(first) + b"\n" + orjson.dumps(last) + b"\n"


def stream_body(body: dict, options: dict[str, str]) -> bytes:
    if "midstream_error" in options:
        return transcript("ollama-chat-stream-error.ndjson")
    data = tool_stream() if wants_tool_call(body) else transcript("ollama-chat-stream.ndjson")
    if "truncate" in options:
        lines = data.rstrip(b"\n").split(b"\n")
        data = b"\n".join(lines[:-1]) + b"\n"
    return data


def embed_answer(count: int) -> bytes:
    data = transcript("ollama-embed.response.json")
    answer = orjson.loads(data)
    vectors = answer["embeddings"]
    if count == len(vectors):
        return data
    answer["embeddings"] = [vectors[i % len(vectors)] for i in range(count)]
    return orjson.dumps(answer)


def routes(recorder: Recorder) -> list[web.RouteDef]:
    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        recorder.record(request, raw)
        body = orjson.loads(raw)
        _, options = scenario(body.get("model", ""))
        if "error" in options:
            return error_response(error_name(options["error"]))
        if body.get("stream", True):
            return await stream_response(request, stream_body(body, options), NDJSON, options)
        name = "ollama-chat-tools.response.json" if wants_tool_call(body) else "ollama-chat.response.json"
        return web.Response(body=transcript(name), content_type="application/json")

    async def embed(request: web.Request) -> web.Response:
        raw = await request.read()
        recorder.record(request, raw)
        body = orjson.loads(raw)
        _, options = scenario(body.get("model", ""))
        if "error" in options:
            return error_response(error_name(options["error"]))
        inputs = body.get("input")
        count = 1 if isinstance(inputs, str) else len(inputs or ())
        return web.Response(body=embed_answer(count), content_type="application/json")

    async def tags(request: web.Request) -> web.Response:
        recorder.record(request, b"")
        return web.Response(body=transcript("ollama-tags.response.json"), content_type="application/json")

    return [web.post("/api/chat", chat), web.post("/api/embed", embed), web.get("/api/tags", tags)]
