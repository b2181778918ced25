"""Bedrock Runtime upstream: Converse, ConverseStream and (Titan) InvokeModel.

Every request must be authenticated as Bedrock would check it: a SigV4 signature recomputed
here from the bytes received (with the gateway's own sigv4 module) against the test key
below, or ``Authorization: Bearer`` with the test API key. Anything else gets the 403
``bedrock-error-403-signature.http`` transcript, so a passing end-to-end test proves the gateway
signs correctly, including the double-encoded model id in the canonical URI.

Scenario options ride on the model id in the URL path (URL-decoded), e.g.
``anthropic.claude-3-haiku-20240307-v1:0@split=1@delay=0.01``:
``split=N|random`` / ``delay=S`` (chunked writes), ``error=<name>`` (a ``bedrock-error-*.http``
transcript; ``error=429-throttling`` is short for ``bedrock-error-429-throttling.http``),
``throttled`` (the 200 stream ending in a throttlingException frame), ``corrupt`` (one byte of
the stream flipped), ``truncate`` (the stream cut in half).
Non-streaming answers: the tools transcript when the request has ``toolConfig`` and its last
turn is not a tool result, else the plain one.
"""
from __future__ import annotations

import sys
from pathlib import Path

import orjson
from aiohttp import web

from common import Recorder, error_response, scenario, stream_response, transcript

try:
    from fastgw.providers.bedrock import sigv4
except ImportError:  # mock server started as a script from outside the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from fastgw.providers.bedrock import sigv4

# The example credentials of bedrock-sigv4-vector.txt; configs under test use these.
TEST_ACCESS_KEY_ID = "AKIDEXAMPLE"
TEST_SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
TEST_API_KEY = "bedrock-test-api-key"
SECRETS = {TEST_ACCESS_KEY_ID: TEST_SECRET_ACCESS_KEY}
EVENT_STREAM = "application/vnd.amazon.eventstream"


def authenticated(request: web.Request, body: bytes) -> bool:
    headers = {k.lower(): v for k, v in request.headers.items()}
    authorization = headers.get("authorization", "")
    if authorization.startswith("Bearer "):
        return authorization[len("Bearer "):] == TEST_API_KEY
    return sigv4.verify_signature(request.method, request.rel_url.raw_path, request.rel_url.raw_query_string,
                                  headers, body, SECRETS)


def error_name(value: str) -> str:
    return value if value.endswith(".http") else f"bedrock-error-{value}.http"


def validation_error(message: str) -> web.Response:
    return web.json_response({"message": message}, status=400, headers={
        "x-amzn-errortype": "ValidationException:http://internal.amazon.com/coral/com.amazon.bedrock/"})


def answers_tool_result(body: dict) -> bool:
    messages = body.get("messages") or []
    return bool(messages) and any("toolResult" in block for block in messages[-1].get("content") or [])


def stream_name(body: dict, options: dict[str, str]) -> str:
    if "throttled" in options:
        return "bedrock-converse-stream-throttled.bin"
    if body.get("toolConfig") and not answers_tool_result(body):
        return "bedrock-converse-stream-tools.bin"
    return "bedrock-converse-stream.bin"


def routes(recorder: Recorder) -> list[web.RouteDef]:
    async def prelude(request: web.Request) -> tuple[dict | None, dict[str, str], web.Response | None]:
        raw = await request.read()
        recorder.record(request, raw)
        if not authenticated(request, raw):
            return None, {}, error_response("bedrock-error-403-signature.http")
        _, options = scenario(request.match_info["model"])
        if "error" in options:
            return None, options, error_response(error_name(options["error"]))
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None, options, validation_error("Malformed input request, please reformat your input and try again.")
        if not isinstance(body, dict):
            return None, options, validation_error("Malformed input request, please reformat your input and try again.")
        return body, options, None

    async def converse(request: web.Request) -> web.StreamResponse:
        body, _options, failure = await prelude(request)
        if failure is not None:
            return failure
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return validation_error("A conversation must start with a user message.")
        tools = body.get("toolConfig") and not answers_tool_result(body)
        name = "bedrock-converse-tools.response.json" if tools else "bedrock-converse.response.json"
        return web.Response(body=transcript(name), content_type="application/json")

    async def converse_stream(request: web.Request) -> web.StreamResponse:
        body, options, failure = await prelude(request)
        if failure is not None:
            return failure
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return validation_error("A conversation must start with a user message.")
        data = bytearray(transcript(stream_name(body, options)))
        if "corrupt" in options:
            data[len(data) // 2] ^= 0x01
        if "truncate" in options:
            del data[len(data) // 2:]
        return await stream_response(request, bytes(data), EVENT_STREAM, options)

    async def invoke(request: web.Request) -> web.StreamResponse:
        body, _options, failure = await prelude(request)
        if failure is not None:
            return failure
        text = body.get("inputText")
        if not isinstance(text, str):
            return validation_error("Malformed input request: required key [inputText] not found")
        size = int(body.get("dimensions") or 8)
        vector = [round(((len(text) + i) % 7) / 7.0 - 0.5, 6) for i in range(size)]
        return web.json_response({"embedding": vector, "inputTextTokenCount": max(1, len(text.split()))})

    return [
        web.post("/model/{model:.+}/converse", converse),
        web.post("/model/{model:.+}/converse-stream", converse_stream),
        web.post("/model/{model:.+}/invoke", invoke),
    ]
