"""Slow streaming mock upstream: one SSE chunk every 50 ms per stream (an LLM's pace).

For the concurrency and memory targets (thousands of streams open at once) and the soak.
Every request gets the 100-chunk OpenAI stream of ``mockdata`` with Transfer-Encoding:
chunked; one loop timer per tick writes the next event of every open stream, so 5,000
streams cost 5,000 writes per tick and no per-stream timers. Paths without ``/sse/``
answer the fixed chat.completion JSON at once.

Run: python benchmarks/slow_stream_mock.py --port 9002 [--interval 0.05] [--chunks 100]
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

HEAD = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: keep-alive\r\n\r\n")


class Streams:
    """Every open stream, advanced one event per tick."""

    def __init__(self, events: list[bytes], interval: float) -> None:
        self.frames = [b"%x\r\n%s\r\n" % (len(e), e) for e in events]
        self.frames[-1] += b"0\r\n\r\n"
        self.interval = interval
        self.active: dict["SlowProtocol", int] = {}
        self.peak = 0
        self.served = 0

    def add(self, proto: "SlowProtocol") -> None:
        proto.transport.write(HEAD + self.frames[0])
        self.active[proto] = 1
        self.peak = max(self.peak, len(self.active))

    def discard(self, proto: "SlowProtocol") -> None:
        self.active.pop(proto, None)

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = loop.time()
        frames = self.frames
        last = len(frames) - 1
        while True:
            next_tick += self.interval
            await asyncio.sleep(max(0.0, next_tick - loop.time()))
            finished = []
            for proto, index in self.active.items():
                proto.transport.write(frames[index])
                if index == last:
                    finished.append(proto)
                else:
                    self.active[proto] = index + 1
            for proto in finished:
                del self.active[proto]
                self.served += 1


class SlowProtocol(asyncio.Protocol):
    def __init__(self, streams: Streams, json_answer: bytes) -> None:
        self.streams = streams
        self.json_answer = json_answer
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.transport = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.transport.close()

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        if b"/sse/" in self.url:
            self.streams.add(self)
        else:
            self.transport.write(self.json_answer)

    def connection_lost(self, exc) -> None:
        self.streams.discard(self)
        self.parser = None  # it holds this protocol: free both now, not at a full collection


async def serve(port: int, interval: float, chunks: int, host: str = "127.0.0.1") -> None:
    body = mockdata.CHAT_JSON
    json_answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)) + body
    streams = Streams(mockdata.stream_events(chunks), interval)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SlowProtocol(streams, json_answer), host, port, backlog=8192,
                                      reuse_address=True)
    ticker = asyncio.ensure_future(streams.run())
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    ticker.cancel()
    server.close()
    print(f"slow mock: {streams.served} streams served, at most {streams.peak} open at once", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=9002)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between two chunks of a stream")
    parser.add_argument("--chunks", type=int, default=100)
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.interval, args.chunks, args.host))


if __name__ == "__main__":
    main()
