"""Shared plumbing for the mock upstreams: transcripts, scenarios, chunked writes, a request log.

Scenario options ride on the model id the gateway sends upstream, so a test picks the
upstream's behaviour through config alone: ``gpt-4o-mini@split=1@delay=0.01`` streams the
transcript one byte per write with 10 ms between writes.
"""
from __future__ import annotations

import asyncio
import os
import random
from pathlib import Path
from typing import Any

from aiohttp import web

TRANSCRIPTS = Path(
    os.environ.get("FASTGW_TRANSCRIPTS")
    or Path(__file__).resolve().parents[3] / "shared" / "reference" / "transcripts"
)


def transcript(name: str) -> bytes:
    return (TRANSCRIPTS / name).read_bytes()


def http_transcript(name: str) -> tuple[int, dict[str, str], bytes]:
    """Parse a raw ``.http`` error transcript into (status, headers, body)."""
    raw = transcript(name).replace(b"\r\n", b"\n")
    head, _, body = raw.partition(b"\n\n")
    lines = head.decode().split("\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    return status, headers, body


def scenario(model: str) -> tuple[str, dict[str, str]]:
    """``base@key=value@flag`` -> (base, {key: value, flag: ""})."""
    base, *opts = model.split("@")
    options = {}
    for opt in opts:
        key, _, value = opt.partition("=")
        options[key] = value
    return base, options


class Recorder:
    """Every request the mock saw, for assertions (``GET /_mock/requests``)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.counters: dict[str, int] = {}

    def record(self, request: web.Request, body: bytes) -> int:
        self.requests.append({
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "body": body.decode("utf-8", "replace"),
        })
        key = request.path
        self.counters[key] = self.counters.get(key, 0) + 1
        return self.counters[key]

    def count(self, key: str) -> int:
        return self.counters.get(key, 0)


async def write_body(response: web.StreamResponse, data: bytes, options: dict[str, str]) -> None:
    """Write ``data`` in pieces: ``split=N`` bytes per write (``split=random`` for random
    sizes, ``split=event`` for one SSE event per write), ``delay`` seconds between writes."""
    split = options.get("split")
    delay = float(options.get("delay") or 0)
    if not split:
        pieces = [data]
    elif split == "event":
        pieces = [event + b"\n\n" for event in data.split(b"\n\n") if event.strip()]
    elif split == "random":
        rng = random.Random(len(data))
        pieces, i = [], 0
        while i < len(data):
            n = rng.randint(1, 17)
            pieces.append(data[i : i + n])
            i += n
    else:
        n = int(split)
        pieces = [data[i : i + n] for i in range(0, len(data), n)]
    for piece in pieces:
        await response.write(piece)
        if delay:
            await asyncio.sleep(delay)


async def stream_response(request: web.Request, data: bytes, content_type: str, options: dict[str, str]) -> web.StreamResponse:
    response = web.StreamResponse(status=200, headers={"content-type": content_type})
    await response.prepare(request)
    await write_body(response, data, options)
    await response.write_eof()
    return response


def error_response(name: str) -> web.Response:
    status, headers, body = http_transcript(name)
    headers.pop("content-length", None)
    return web.Response(status=status, body=body, headers=headers)
