"""Cohere v2 upstream (``POST /v2/chat``, ``POST /v2/embed``), serving the Cohere transcripts.

Scenario options on the model id (in the body): ``split``/``delay`` (chunked writes),
``error=<name>`` (a ``cohere-error-*.http`` transcript; ``error=429`` is short for
``cohere-error-429.http``, ``error=400-too-many-tokens`` likewise), ``truncate`` (the
stream cut in half, so ``message-end`` never comes), ``midstream_error`` (the text stream's
first events, then a ``message-end`` with finish_reason ERROR, as the SDK types describe).

Streams replay ``cohere-chat-tools-stream.sse`` when the request has tools and its last
message is not a tool result, else ``cohere-chat-stream.sse``, byte for byte. Non-streaming
answers are ``cohere-chat.response.json`` byte for byte; a tool-call answer is assembled
from the tools stream (no non-streaming tool transcript exists). Embeds answer
``cohere-embed.response.json`` (resized to the request, cycling its vectors). Requests
without ``Authorization: Bearer`` get the 401 transcript.
"""
from __future__ import annotations

import orjson
from aiohttp import web

from common import Recorder, error_response, scenario, stream_response, transcript

SSE = "text/event-stream"


def error_name(value: str) -> str:
    return value if value.endswith(".http") else f"cohere-error-{value}.http"


def wants_tool_call(body: dict) -> bool:
    messages = body.get("messages") or []
    return bool(body.get("tools")) and not (messages and messages[-1].get("role") == "tool")


def events(sse: bytes) -> list[dict]:
    out = []
    for block in sse.decode().split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                out.append(orjson.loads(line[6:]))
    return out


def assemble_tool_answer() -> bytes:
    """The non-streaming body the tools stream describes."""
    plan, calls, end, msg_id = "", {}, {}, ""
    for event in events(transcript("cohere-chat-tools-stream.sse")):
        kind, message = event["type"], (event.get("delta") or {}).get("message") or {}
        if kind == "message-start":
            msg_id = event["id"]
        elif kind == "tool-plan-delta":
            plan += message["tool_plan"]
        elif kind == "tool-call-start":
            calls[event["index"]] = message["tool_calls"]
        elif kind == "tool-call-delta":
            calls[event["index"]]["function"]["arguments"] += message["tool_calls"]["function"]["arguments"]
        elif kind == "message-end":
            end = event["delta"]
    return orjson.dumps({"id": msg_id, "message": {"role": "assistant", "tool_plan": plan,
                                                   "tool_calls": [calls[i] for i in sorted(calls)]},
                         "finish_reason": end["finish_reason"], "usage": end["usage"]})


def stream_body(body: dict, options: dict[str, str]) -> bytes:
    if "midstream_error" in options:
        head = b"\n\n".join(transcript("cohere-chat-stream.sse").split(b"\n\n")[:3])
        end = {"type": "message-end", "delta": {"finish_reason": "ERROR", "error": "internal error while generating"}}
        return head + b"\n\nevent: message-end\ndata: " + orjson.dumps(end) + b"\n\n"
    name = "cohere-chat-tools-stream.sse" if wants_tool_call(body) else "cohere-chat-stream.sse"
    data = transcript(name)
    return data[: len(data) // 2] if "truncate" in options else data


def embed_answer(texts: list[str]) -> bytes:
    data = transcript("cohere-embed.response.json")
    answer = orjson.loads(data)
    if texts == answer["texts"]:
        return data
    vectors = answer["embeddings"]["float"]
    answer["embeddings"]["float"] = [vectors[i % len(vectors)] for i in range(len(texts))]
    answer["texts"] = texts
    return orjson.dumps(answer)


def routes(recorder: Recorder) -> list[web.RouteDef]:
    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        recorder.record(request, raw)
        body = orjson.loads(raw)
        _, options = scenario(body.get("model", ""))
        if "error" in options:
            return error_response(error_name(options["error"]))
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return error_response("cohere-error-401.http")
        if body.get("stream"):
            return await stream_response(request, stream_body(body, options), SSE, options)
        data = assemble_tool_answer() if wants_tool_call(body) else transcript("cohere-chat.response.json")
        return web.Response(body=data, content_type="application/json")

    async def embed(request: web.Request) -> web.Response:
        raw = await request.read()
        recorder.record(request, raw)
        body = orjson.loads(raw)
        _, options = scenario(body.get("model", ""))
        if "error" in options:
            return error_response(error_name(options["error"]))
        if not request.headers.get("authorization", "").startswith("Bearer "):
            return error_response("cohere-error-401.http")
        return web.Response(body=embed_answer(list(body.get("texts") or ())), content_type="application/json")

    return [web.post("/v2/chat", chat), web.post("/v2/embed", embed)]
