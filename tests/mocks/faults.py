"""Fault injection for the mock upstreams, chosen by scenario options on the model id.

Options (``gpt-4o-mini@fail=429x2@k=test1``):

- ``fail=STATUSxN``: the first N calls for this exact model id answer STATUS (an
  OpenAI-shaped error; a 429 carries ``retry-after-ms``, see ``retry_after_ms``), later
  calls succeed. ``fail=500`` alone fails every call.
- ``status=STATUS``: every call answers STATUS.
- ``retry_after_ms=MS``: the retry-after a 429 carries (default 50 ms).
- ``reset_before_headers``: the connection is dropped before any response.
- ``reset_midstream``: a stream is cut (connection dropped) after half its events.
- ``stall_first_byte=SECONDS``: headers go out, then nothing for SECONDS.
- ``stall_midstream=SECONDS``: half the events, then nothing for SECONDS.
- ``malformed_sse``: the stream starts with an event that is not JSON.
- ``times=N``: the faults above apply only to the first N calls for this model id.

Calls are counted per full model id (so tests pick independent counters by adding a tag
such as ``@k=name``); ``POST /_mock/reset`` clears the counts.
"""
from __future__ import annotations

import asyncio
import math

import orjson
from aiohttp import web

from common import Recorder, write_body

_ERROR_TYPES = {429: "requests", 500: "server_error", 502: "server_error", 503: "server_error"}


def call_number(recorder: Recorder, model: str) -> int:
    """Count this call for ``model``; returns its 1-based ordinal."""
    key = "model:" + model
    recorder.counters[key] = recorder.counters.get(key, 0) + 1
    return recorder.counters[key]


def _active(options: dict[str, str], n: int) -> bool:
    times = options.get("times")
    return not times or n <= int(times)


def error_status(status: int, options: dict[str, str]) -> web.Response:
    headers = {}
    code = None
    if status == 429:
        ms = int(options.get("retry_after_ms") or 50)
        headers = {"retry-after-ms": str(ms), "retry-after": str(max(1, math.ceil(ms / 1000)))}
        code = "rate_limit_exceeded"
    body = {"error": {"message": f"mock upstream failure {status}", "type": _ERROR_TYPES.get(status, "server_error"),
                      "param": None, "code": code}}
    return web.Response(status=status, body=orjson.dumps(body), headers=headers, content_type="application/json")


def _abort(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()


async def before_response(request: web.Request, options: dict[str, str], n: int) -> web.StreamResponse | None:
    """A failure to answer with instead of the normal response, or None."""
    fail = options.get("fail")
    if fail:
        status, _, times = fail.partition("x")
        if not times or n <= int(times):
            return error_status(int(status), options)
    if "status" in options:
        return error_status(int(options["status"]), options)
    if "reset_before_headers" in options and _active(options, n):
        _abort(request)
        return web.Response(status=500)  # never reaches the client: the connection is gone
    return None


async def stream_with_faults(request: web.Request, data: bytes, content_type: str, options: dict[str, str],
                             n: int) -> web.StreamResponse:
    """Like ``common.stream_response``, with the stream faults of ``options`` applied."""
    response = web.StreamResponse(status=200, headers={"content-type": content_type})
    await response.prepare(request)
    faulty = _active(options, n)
    if faulty and options.get("stall_first_byte"):
        await asyncio.sleep(float(options["stall_first_byte"]))
    if faulty and "malformed_sse" in options:
        await response.write(b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
    if not (faulty and ("stall_midstream" in options or "reset_midstream" in options)):
        await write_body(response, data, options)
        await response.write_eof()
        return response
    events = data.split(b"\n\n")
    half = max(1, len(events) // 2)
    first, rest = b"\n\n".join(events[:half]) + b"\n\n", b"\n\n".join(events[half:])
    await write_body(response, first, options)
    if faulty and options.get("stall_midstream"):
        await asyncio.sleep(float(options["stall_midstream"]))
    if faulty and "reset_midstream" in options:
        await asyncio.sleep(0.05)  # let the first half reach the client before the cut
        _abort(request)
        return response
    await write_body(response, rest, options)
    await response.write_eof()
    return response
