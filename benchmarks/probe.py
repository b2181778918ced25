"""Time-to-first-byte probe: sequential requests on one keep-alive connection (c=1).

For each request it records the time from writing the request to the first body byte
carrying an SSE ``data:`` line (streams) or the first response byte (JSON), and the time
to the end of the response. Prints one JSON line with percentiles in microseconds.

Run: python benchmarks/probe.py --url http://127.0.0.1:4000/v1/chat/completions \
        --body stream.json --n 2000 [--key sk-...]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import time
from urllib.parse import urlsplit

import uvloop


class Probe(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport = None
        self.buf = bytearray()
        self.first: float | None = None
        self.done: asyncio.Future | None = None
        self.stream = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        self.buf += data
        if self.first is None and (not self.stream or b"data:" in self.buf):
            self.first = now
        if self.done is not None and not self.done.done() and self._complete():
            self.done.set_result(now)

    def _complete(self) -> bool:
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return False
        head = bytes(self.buf[:head_end]).lower()
        body = self.buf[head_end + 4:]
        if b"transfer-encoding: chunked" in head:
            return body.endswith(b"0\r\n\r\n")
        for line in head.split(b"\r\n"):
            if line.startswith(b"content-length:"):
                return len(body) >= int(line.split(b":", 1)[1])
        return False

    def connection_lost(self, exc) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("connection closed"))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100.0 * (len(values) - 1))))]


async def main(args: argparse.Namespace) -> dict:
    url = urlsplit(args.url)
    body = open(args.body, "rb").read()
    stream = b'"stream":true' in body.replace(b" ", b"")
    headers = [f"POST {url.path} HTTP/1.1", f"Host: {url.netloc}", "Content-Type: application/json",
               f"Content-Length: {len(body)}"]
    if args.key:
        headers.append(f"Authorization: Bearer {args.key}")
    headers += [h.strip() for h in (args.headers or "").split("|") if h.strip()]
    request = ("\r\n".join(headers) + "\r\n\r\n").encode() + body
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(Probe, url.hostname, url.port)
    proto.stream = stream
    ttfb, total = [], []
    for i in range(args.warmup + args.n):
        proto.buf = bytearray()
        proto.first = None
        proto.done = loop.create_future()
        start = time.perf_counter()
        proto.transport.write(request)
        end = await asyncio.wait_for(proto.done, 30)
        if not proto.buf.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"probe: unexpected response {bytes(proto.buf[:200])!r}")
        if i >= args.warmup:
            ttfb.append((proto.first - start) * 1e6)
            total.append((end - start) * 1e6)
    proto.transport.close()
    return {"n": args.n, "ttfb_p50_us": pct(ttfb, 50), "ttfb_p99_us": pct(ttfb, 99),
            "total_p50_us": pct(total, 50), "total_p99_us": pct(total, 99)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--body", required=True)
    parser.add_argument("--key")
    parser.add_argument("--headers", help='extra headers, "Name: value|Name: value"')
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    print("PROBE_JSON " + json.dumps(uvloop.run(main(parser.parse_args()))), flush=True)
