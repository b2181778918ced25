"""Built-in fast mock upstream: raw uvloop protocols + httptools, keep-alive, fixed answers.

Used when nginx cannot be installed, and by the locust run. Paths containing ``/sse/``
answer the 100-chunk SSE stream, paths containing ``/auto/`` answer the stream when the
request body asks for ``"stream": true`` and the JSON otherwise, everything else the fixed
chat.completion JSON. ``--chunked`` sends the stream with
``Transfer-Encoding: chunked`` (one HTTP chunk per SSE event, all written at once) instead
of a Content-Length body. ``--delay-ms D`` answers each request D ms after it arrived, as a
model would (pipelined requests on one connection are answered in order).

Run: python benchmarks/fast_mock.py --port 9001 [--chunked] [--delay-ms D]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

import httptools
import uvloop

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mockdata  # noqa: E402


def _fixed(body: bytes, content_type: bytes) -> bytes:
    return (b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nContent-Length: " + str(len(body)).encode()
            + b"\r\nConnection: keep-alive\r\n\r\n" + body)


def _chunked(events: list[bytes], content_type: bytes) -> bytes:
    out = [b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: keep-alive\r\n\r\n"]
    for event in events:
        out.append(b"%x\r\n%s\r\n" % (len(event), event))
    out.append(b"0\r\n\r\n")
    return b"".join(out)


class MockProtocol(asyncio.Protocol):
    __slots__ = ("transport", "parser", "url", "json_answer", "sse_answer", "stream", "delay", "loop")

    def __init__(self, json_answer: bytes, sse_answer: bytes, delay: float = 0.0) -> None:
        self.transport = None
        self.delay = delay
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.json_answer = json_answer
        self.sse_answer = sse_answer
        self.stream = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url
        self.stream = False

    def on_body(self, body: bytes) -> None:
        if not self.stream and b"/auto/" in self.url:
            compact = body.replace(b" ", b"")
            self.stream = b'"stream":true' in compact

    def on_message_complete(self) -> None:
        answer = self.sse_answer if (self.stream or b"/sse/" in self.url) else self.json_answer
        keep_alive = self.parser.should_keep_alive()
        if self.delay > 0:
            self.loop.call_later(self.delay, self._answer, answer, keep_alive)
        else:
            self._answer(answer, keep_alive)

    def _answer(self, answer: bytes, keep_alive: bool) -> None:
        if self.transport.is_closing():
            return
        self.transport.write(answer)
        if not keep_alive:
            self.transport.close()


async def serve(port: int, chunked: bool, host: str = "127.0.0.1", delay: float = 0.0) -> None:
    json_answer = _fixed(mockdata.CHAT_JSON, b"application/json")
    events = mockdata.stream_events(100)
    sse_type = b"text/event-stream; charset=utf-8"
    sse_answer = _chunked(events, sse_type) if chunked else _fixed(b"".join(events), sse_type)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: MockProtocol(json_answer, sse_answer, delay), host, port, backlog=4096,
                                      reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9001)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--chunked", action="store_true")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="answer each request this long after it arrived")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.chunked, args.host, args.delay_ms / 1000))


if __name__ == "__main__":
    main()
