"""Anthropic Messages upstream (``POST /v1/messages``), serving the Anthropic transcripts.

Streams replay the ``.sse`` transcripts byte for byte: the thinking stream when the request
enables ``thinking``, the tools stream when it has ``tools`` and its last turn is not a
tool result, else the text stream. Non-streaming: ``anthropic-messages.response.json`` byte
for byte; for tools / thinking requests the Message is assembled from the matching stream
(no non-streaming transcript exists for those).

Requests must carry ``x-api-key`` or ``Authorization: Bearer`` (else the 401 transcript)
and ``model``, ``max_tokens`` and ``messages`` (else a 400 in Anthropic's shape).
Scenario options on the model id: ``split=N|random`` / ``delay=S`` (chunked writes),
``error=<name>`` (an ``anthropic-error-*.http`` transcript; ``error=429`` is short for
``anthropic-error-429.http``), ``midstream_error`` (the stream that ends in an
``overloaded_error`` event), ``error_before_content`` (the same error right after
``message_start``), ``truncate`` (the stream cut in half).
"""
from __future__ import annotations

import orjson
from aiohttp import web

from common import Recorder, error_response, scenario, stream_response, transcript

SSE = "text/event-stream; charset=utf-8"


def error_name(value: str) -> str:
    return value if value.endswith(".http") else f"anthropic-error-{value}.http"


def invalid_request(message: str) -> web.Response:
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": message},
            "request_id": "req_mock"}
    return web.json_response(body, status=400)


def answers_tool_result(body: dict) -> bool:
    messages = body.get("messages") or []
    last = messages[-1] if messages else {}
    content = last.get("content") if isinstance(last, dict) else None
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


def stream_name(body: dict, options: dict[str, str]) -> str:
    if "midstream_error" in options:
        return "anthropic-messages-stream-error.sse"
    if (body.get("thinking") or {}).get("type") == "enabled":
        return "anthropic-messages-thinking-stream.sse"
    if body.get("tools") and not answers_tool_result(body):
        return "anthropic-messages-tools-stream.sse"
    return "anthropic-messages-stream.sse"


def assemble(sse: bytes) -> dict:
    """The non-streaming Message a stream transcript describes."""
    message: dict = {}
    partial: dict[int, str] = {}
    for raw in sse.decode().split("\n\n"):
        data = next((line[6:] for line in raw.split("\n") if line.startswith("data: ")), None)
        if data is None:
            continue
        event = orjson.loads(data)
        kind = event["type"]
        if kind == "message_start":
            message = event["message"]
        elif kind == "content_block_start":
            message["content"].append(dict(event["content_block"]))
        elif kind == "content_block_delta":
            block, delta = message["content"][event["index"]], event["delta"]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            elif delta["type"] == "signature_delta":
                block["signature"] = delta["signature"]
            elif delta["type"] == "input_json_delta":
                partial[event["index"]] = partial.get(event["index"], "") + delta["partial_json"]
        elif kind == "content_block_stop" and event["index"] in partial:
            message["content"][event["index"]]["input"] = orjson.loads(partial.pop(event["index"]))
        elif kind == "message_delta":
            message.update(event["delta"])
            message["usage"].update(event["usage"])
    return message


def routes(recorder: Recorder) -> list[web.RouteDef]:
    async def messages(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        recorder.record(request, raw)
        if not (request.headers.get("x-api-key") or request.headers.get("authorization", "").startswith("Bearer ")):
            return error_response("anthropic-error-401.http")
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return invalid_request("request body is not valid JSON")
        for field in ("model", "max_tokens", "messages"):
            if field not in body:
                return invalid_request(f"{field}: Field required")
        _, options = scenario(str(body["model"]))
        if "error" in options:
            return error_response(error_name(options["error"]))
        name = stream_name(body, options)
        if not body.get("stream") and "midstream_error" in options:
            return error_response("anthropic-error-529.http")
        if body.get("stream"):
            data = transcript(name)
            if "error_before_content" in options:  # message_start, then the error: nothing to commit yet
                events = transcript("anthropic-messages-stream-error.sse").split(b"\n\n")
                data = b"\n\n".join(e for e in events if not e.startswith(b"event: content_block"))
            if "truncate" in options:  # truncate=F keeps that fraction (default a half)
                data = data[: int(len(data) * float(options["truncate"] or 0.5))]
            return await stream_response(request, data, SSE, options)
        if name == "anthropic-messages-stream.sse":
            return web.Response(body=transcript("anthropic-messages.response.json"), content_type="application/json")
        return web.Response(body=orjson.dumps(assemble(transcript(name))), content_type="application/json")

    async def count_tokens(request: web.Request) -> web.Response:
        raw = await request.read()
        recorder.record(request, raw)
        body = orjson.loads(raw)
        text = orjson.dumps([body.get("system"), body.get("messages"), body.get("tools")])
        return web.json_response({"input_tokens": max(1, len(text) // 4)})

    return [
        web.post("/v1/messages", messages),
        web.post("/v1/messages/count_tokens", count_tokens),
    ]
