"""The least a proxy on uvloop can do: the floor under the gateway's added latency.

For each client connection it keeps one keep-alive connection to the upstream. A client
request is forwarded byte for byte once httptools has seen its end, and the upstream's
answer goes back byte for byte, written as it arrives (so streams keep their chunks).
Nothing is routed, checked, rewritten, counted or logged. Measured in the same run as the
gateway, with the same pinning, it tells how much of the added latency is the machine's
(two more loopback hops, two more cross-core wake-ups) and how much is the gateway's own
work. Not a product: benchmarks only.

    python benchmarks/floor_proxy.py --port 8080 --upstream 127.0.0.1:9000 --path-prefix /json
"""
from __future__ import annotations

import argparse
import asyncio

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    def __init__(self, client: "Client") -> None:
        self.client = client
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.client.transport.write(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        self.client.response_done()

    def connection_lost(self, exc) -> None:  # noqa: ANN001
        self.client.transport.close()


class Client(asyncio.Protocol):
    def __init__(self, upstream: tuple[str, int], prefix: bytes) -> None:
        self.upstream_addr = upstream
        self.prefix = prefix
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.upstream: Upstream | None = None
        self.pending: list[bytes] = []
        self.request = bytearray()

    def connection_made(self, transport) -> None:  # noqa: ANN001
        self.transport = transport
        loop = asyncio.get_running_loop()
        loop.create_task(self._connect(loop))

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> None:
        _, self.upstream = await loop.create_connection(lambda: Upstream(self), *self.upstream_addr)
        for request in self.pending:
            self.upstream.transport.write(request)
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        self.request += data
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_message_complete(self) -> None:
        raw = bytes(self.request)
        self.request.clear()
        if self.prefix:  # the mock serves under a path prefix: /v1/... -> /json/v1/...
            method, _, rest = raw.partition(b" ")
            raw = method + b" " + self.prefix + rest
        if self.upstream is None or self.upstream.transport is None:
            self.pending.append(raw)
        else:
            self.upstream.transport.write(raw)

    def response_done(self) -> None:
        pass

    def connection_lost(self, exc) -> None:  # noqa: ANN001
        if self.upstream is not None and self.upstream.transport is not None:
            self.upstream.transport.close()


async def serve(port: int, upstream: tuple[str, int], prefix: bytes) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(upstream, prefix), "127.0.0.1", port, backlog=8192)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="host:port")
    parser.add_argument("--path-prefix", default="")
    args = parser.parse_args()
    host, _, port = args.upstream.rpartition(":")
    uvloop.run(serve(args.port, (host, int(port)), args.path_prefix.encode()))


if __name__ == "__main__":
    main()
