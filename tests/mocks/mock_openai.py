"""OpenAI-compatible upstream (also Azure's routes), serving the OpenAI transcripts.

Non-streaming chat echoes the transcript body; streams replay ``openai-chat-stream.sse``
(or the tools stream when the request has tools) byte for byte. Scenario options:
``error=<transcript .http name>`` answers with that error, ``midstream_error`` replays
the stream that breaks with an in-band error, ``no_usage`` drops the usage chunk when the
request did not ask for it (as OpenAI does), ``azure`` replays the Azure stream. Fault
injection (``fail=429x2``, ``reset_midstream``, ``stall_first_byte=2``, ...): see ``faults.py``.
"""
from __future__ import annotations

import asyncio

import orjson
from aiohttp import web

from common import Recorder, error_response, scenario, stream_response, transcript
from faults import before_response, call_number, stream_with_faults


def routes(recorder: Recorder) -> list[web.RouteDef]:
    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        recorder.record(request, raw)
        body = orjson.loads(raw)
        model = body.get("model") or request.match_info.get("deployment", "")
        _, options = scenario(model)
        n = call_number(recorder, model)
        if "error" in options:
            return error_response(options["error"])
        failure = await before_response(request, options, n)
        if failure is not None:
            return failure
        if body.get("stream"):
            if "midstream_error" in options:
                name = "openai-chat-stream-midstream-error.sse"
            elif body.get("tools"):
                name = "openai-chat-tools-stream.sse"  # also for Azure: there is no Azure tools transcript
            elif "azure" in options or "deployment" in request.match_info:
                name = "azure-chat-stream.sse"
            else:
                name = "openai-chat-stream.sse"
            data = transcript(name)
            if not (body.get("stream_options") or {}).get("include_usage"):
                data = _strip_usage(data)
            if "truncate" in options:
                data = data[: len(data) // 2]
            return await stream_with_faults(request, data, "text/event-stream; charset=utf-8", options, n)
        if options.get("stall_first_byte") and n <= int(options.get("times") or n):
            await asyncio.sleep(float(options["stall_first_byte"]))
        name = "openai-chat-tools.response.json" if body.get("tools") else "openai-chat.response.json"
        return web.Response(body=transcript(name), content_type="application/json")

    async def completions(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        recorder.record(request, raw)
        body = orjson.loads(raw)
        text = "This is a test."
        if body.get("stream"):
            chunks = []
            for piece in ("This", " is", " a", " test."):
                chunks.append({"id": "cmpl-1", "object": "text_completion", "created": 1735689600,
                               "model": body["model"], "choices": [{"index": 0, "text": piece, "logprobs": None,
                                                                     "finish_reason": None}]})
            chunks.append({"id": "cmpl-1", "object": "text_completion", "created": 1735689600, "model": body["model"],
                           "choices": [{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}]})
            if (body.get("stream_options") or {}).get("include_usage"):
                chunks.append({"id": "cmpl-1", "object": "text_completion", "created": 1735689600,
                               "model": body["model"], "choices": [],
                               "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}})
            data = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
            return await stream_response(request, data, "text/event-stream", {})
        return web.json_response({"id": "cmpl-1", "object": "text_completion", "created": 1735689600,
                                  "model": body["model"], "choices": [{"index": 0, "text": text, "logprobs": None,
                                                                       "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 5, "completion_tokens": 4, "total_tokens": 9}})

    async def embeddings(request: web.Request) -> web.Response:
        raw = await request.read()
        recorder.record(request, raw)
        body = orjson.loads(raw)
        _, options = scenario(body.get("model", ""))
        if "error" in options:
            return error_response(options["error"])
        name = "openai-embeddings-base64.response.json" if body.get("encoding_format") == "base64" \
            else "openai-embeddings.response.json"
        return web.Response(body=transcript(name), content_type="application/json")

    async def models(request: web.Request) -> web.Response:
        recorder.record(request, b"")
        return web.Response(body=transcript("openai-models.response.json"), content_type="application/json")

    return [
        web.post("/v1/chat/completions", chat),
        web.post("/v1/completions", completions),
        web.post("/v1/embeddings", embeddings),
        web.get("/v1/models", models),
        web.post("/openai/deployments/{deployment}/chat/completions", chat),
        web.post("/openai/deployments/{deployment}/embeddings", embeddings),
    ]


def _strip_usage(data: bytes) -> bytes:
    """What OpenAI sends without include_usage: no usage chunk, no ``usage`` fields."""
    events = data.split(b"\n\n")
    kept = []
    for event in events:
        if event.startswith(b"data: {"):
            chunk = orjson.loads(event[6:])
            if chunk.get("choices") == [] and chunk.get("usage"):
                continue
            chunk.pop("usage", None)
            event = b"data: " + orjson.dumps(chunk)
        kept.append(event)
    return b"\n\n".join(kept)
