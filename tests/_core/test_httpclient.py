"""The compiled upstream HTTP/1.1 client (fastgw._core.httpclient) against local servers.

Each test runs on uvloop (what the gateway uses) and on the stock asyncio loop. Servers are
aiohttp test servers, or raw asyncio protocols where a test needs to misbehave on purpose
(reset mid-body, never answer, close idle connections).
"""
from __future__ import annotations

import asyncio
import gc
import gzip
import os
import shutil
import ssl
import subprocess
import time
from pathlib import Path
from typing import Awaitable, Callable

import pytest
import uvloop
from aiohttp import web

from fastgw._core.httpclient import HTTPClient, Response
from fastgw.errors import GatewayError, upstream_timeout, upstream_unreachable
from fastgw.providers.base import UpstreamRequest
from fastgw.upstream.fast import AutoTransport, FastTransport

LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


@pytest.fixture(params=sorted(LOOPS))
def run(request) -> Callable[[Callable[[], Awaitable[None]]], None]:
    def runner(fn: Callable[[], Awaitable[None]]) -> None:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as r:
            r.run(asyncio.wait_for(fn(), 30))

    return runner


def new_client(**kw) -> HTTPClient:
    return HTTPClient(timeout_error=upstream_timeout, connection_error=upstream_unreachable, **kw)


def post(url: str, body: bytes | None = b"{}", headers: dict | None = None, method: str = "POST") -> UpstreamRequest:
    return UpstreamRequest(method, url, dict(headers or {"content-type": "application/json"}), body)


async def send(client: HTTPClient, req: UpstreamRequest, connect_timeout: float = 2.0, read_timeout: float = 5.0) -> Response:
    return await client.send(req, connect_timeout=connect_timeout, read_timeout=read_timeout)


async def collect(resp: Response) -> list[bytes]:
    return [chunk async for chunk in resp.iter_chunks()]


# --------------------------------------------------------------------------------------------
# aiohttp test server
# --------------------------------------------------------------------------------------------

class App:
    """An aiohttp server with a few routes; counts the TCP connections it accepted."""

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self, ssl_context: ssl.SSLContext | None = None, keepalive_timeout: float = 75.0) -> "App":
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/echo", self.echo)
        app.router.add_get("/echo", self.echo)
        app.router.add_post("/chunked", self.chunked)
        app.router.add_post("/big", self.big)
        app.router.add_post("/gzip", self.gzipped)
        app.router.add_post("/status/{code}", self.status)
        app.router.add_post("/slow", self.slow)
        self.runner = web.AppRunner(app, keepalive_timeout=keepalive_timeout)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        for sock in site._server.sockets:  # type: ignore[union-attr]
            pass
        return self

    def url(self, path: str, scheme: str = "http", host: str = "127.0.0.1") -> str:
        return f"{scheme}://{host}:{self.port}{path}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()

    def _seen(self, request: web.Request, body: bytes) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append({"method": request.method, "path": request.path_qs, "headers": dict(request.headers),
                              "body": body, "peer": peer})

    async def echo(self, request: web.Request) -> web.Response:
        body = await request.read()
        self._seen(request, body)
        return web.Response(body=body, headers={"X-Echo-Host": request.headers.get("Host", ""),
                                                "X-Peer": str(request.transport.get_extra_info("peername")[1])})

    async def chunked(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self._seen(request, body)
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        gap = float(request.query.get("gap", "0.01"))
        for i in range(5):
            await response.write(b"data: %d\n\n" % i)
            await asyncio.sleep(gap)
        await response.write_eof()
        return response

    async def big(self, request: web.Request) -> web.Response:
        body = await request.read()
        self._seen(request, b"")
        return web.Response(body=body[::-1])

    async def gzipped(self, request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=gzip.compress(b"hello " * 1000), headers={"Content-Encoding": "gzip"})

    async def status(self, request: web.Request) -> web.Response:
        await request.read()
        code = int(request.match_info["code"])
        return web.Response(status=code, body=b'{"error":{"message":"nope"}}',
                            headers={"Retry-After": "7", "Set-Cookie": "a=1"})

    async def slow(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse()
        response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"first")
        await asyncio.sleep(1.0)
        await response.write(b"late")
        return response


# --------------------------------------------------------------------------------------------
# Raw servers that misbehave on purpose
# --------------------------------------------------------------------------------------------

class Raw(asyncio.Protocol):
    """Answers each request (after the blank line) by calling ``behaviour(self, count)``."""

    def __init__(self, behaviour: Callable[["Raw", int], None], log: list) -> None:
        self.behaviour = behaviour
        self.log = log
        self.buf = b""
        self.count = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.log.append(self)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            head, _, rest = self.buf.partition(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(rest) < length:
                return
            self.buf = rest[length:]
            self.count += 1
            self.behaviour(self, self.count)


async def raw_server(behaviour: Callable[[Raw, int], None]) -> tuple[asyncio.AbstractServer, int, list]:
    log: list = []
    server = await asyncio.get_running_loop().create_server(lambda: Raw(behaviour, log), "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1], log


def ok(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

def test_content_length_body_and_request_line(run) -> None:
    async def main() -> None:
        app = await App().start()
        client = new_client()
        try:
            resp = await send(client, post(app.url("/echo?x=1&y=%20z"), b'{"a":1}',
                                           {"Content-Type": "application/json", "Authorization": "Bearer k"}))
            assert resp.status == 200
            assert await resp.read() == b'{"a":1}'
            resp.close()
            seen = app.requests[-1]
            assert seen["method"] == "POST" and seen["path"] == "/echo?x=1&y=%20z"
            assert seen["headers"]["Content-Length"] == "7"
            assert seen["headers"]["Host"] == f"127.0.0.1:{app.port}"
            assert seen["headers"]["Authorization"] == "Bearer k"
            # Case-insensitive response headers with lowercase names.
            assert resp.headers["x-echo-host"] == f"127.0.0.1:{app.port}"
            assert resp.headers["X-Echo-Host"] == resp.headers.get("X-ECHO-HOST")
            assert "content-length" in resp.headers and "Content-Length" in resp.headers
            assert all(k == k.lower() for k in resp.headers)
            # GET without a body: no Content-Length on the wire.
            resp = await send(client, post(app.url("/echo"), None, {}, method="GET"))
            assert await resp.read() == b""
            resp.close()
            assert "Content-Length" not in app.requests[-1]["headers"]
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_chunked_body_streams_as_it_arrives(run) -> None:
    async def main() -> None:
        app = await App().start()
        client = new_client()
        try:
            resp = await send(client, post(app.url("/chunked")))
            assert resp.headers["transfer-encoding"] == "chunked"
            chunks = await collect(resp)
            resp.close()
            assert b"".join(chunks) == b"".join(b"data: %d\n\n" % i for i in range(5))
            assert len(chunks) >= 3, "chunks written 10 ms apart must not be batched until the end"
            # read() on a chunked body too
            resp = await send(client, post(app.url("/chunked")))
            assert await resp.read() == b"".join(b"data: %d\n\n" % i for i in range(5))
            resp.close()
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_keep_alive_reuses_one_connection(run) -> None:
    async def main() -> None:
        app = await App().start()
        client = new_client()
        try:
            ports = set()
            for i in range(20):
                resp = await send(client, post(app.url("/echo"), b"%d" % i))
                assert await resp.read() == b"%d" % i
                ports.add(resp.headers["x-peer"])
                resp.close()
            assert len(ports) == 1
            assert client.connections_opened == 1 and client.requests_sent == 20
            assert client.idle_connections == 1
            # Concurrent requests open parallel connections, which are then all pooled.
            results = await asyncio.gather(*[send(client, post(app.url("/echo"), b"x")) for _ in range(8)])
            for resp in results:
                assert await resp.read() == b"x"
                resp.close()
            assert client.connections_opened == 8
            assert client.idle_connections == 8
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_server_closing_idle_connections_means_a_fresh_connection(run) -> None:
    async def main() -> None:
        # aiohttp closes idle keep-alive connections after 0.2 s.
        app = await App().start(keepalive_timeout=0.2)
        client = new_client()
        try:
            resp = await send(client, post(app.url("/echo"), b"1"))
            assert await resp.read() == b"1"
            resp.close()
            first_port = resp.headers["x-peer"]
            await asyncio.sleep(0.6)
            assert client.idle_connections == 0, "a connection the server closed must leave the pool"
            resp = await send(client, post(app.url("/echo"), b"2"))
            assert await resp.read() == b"2"
            resp.close()
            assert resp.headers["x-peer"] != first_port
            assert client.connections_opened == 2
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_stale_connection_closed_as_we_send_is_retried_once(run) -> None:
    """The server closes the idle connection without us noticing (we poll nothing): the
    request fails on the dead socket before any response byte, and is sent again on a new one."""

    async def main() -> None:
        def behaviour(proto: Raw, count: int) -> None:
            proto.transport.write(ok(b"hi"))

        server, port, log = await raw_server(behaviour)
        client = new_client()
        try:
            url = f"http://127.0.0.1:{port}/x"
            resp = await send(client, post(url))
            assert await resp.read() == b"hi"
            resp.close()
            # Close server-side *and* pretend the client has not processed the EOF yet:
            # abort from the server; the pooled connection is dead on next use.
            pooled = client.idle_connections
            assert pooled == 1
            log[0].transport.abort()
            resp = await send(client, post(url))
            assert await resp.read() == b"hi"
            resp.close()
            assert client.connections_opened == 2
        finally:
            await client.close()
            server.close()

    run(main)


def test_read_timeout_before_headers_and_mid_body(run) -> None:
    async def main() -> None:
        def silent(proto: Raw, count: int) -> None:
            pass

        server, port, _ = await raw_server(silent)
        app = await App().start()
        client = new_client()
        try:
            with pytest.raises(GatewayError) as info:
                await send(client, post(f"http://127.0.0.1:{port}/x"), read_timeout=0.2)
            assert info.value.status == 504 and info.value.code == "timeout" and info.value.retryable
            assert "did not answer in time" in info.value.message
            # Mid-stream: first chunk arrives, then 1 s of silence with a 0.3 s read timeout.
            resp = await send(client, post(app.url("/slow")), read_timeout=0.3)
            it = resp.iter_chunks().__aiter__()
            assert await it.__anext__() == b"first"
            with pytest.raises(GatewayError) as info:
                await it.__anext__()
            resp.close()
            assert info.value.status == 504 and "stopped sending (read timeout)" in info.value.message
            # The same with read()
            resp = await send(client, post(app.url("/slow")), read_timeout=0.3)
            with pytest.raises(GatewayError) as info:
                await resp.read()
            resp.close()
            assert info.value.status == 504 and "timed out sending the response" in info.value.message
        finally:
            await client.close()
            await app.stop()
            server.close()

    run(main)


def test_read_timeout_is_inactivity_not_total(run) -> None:
    async def main() -> None:
        app = await App().start()
        client = new_client()
        try:
            # 5 writes 80 ms apart (400 ms in all): a 250 ms inactivity timeout holds.
            resp = await send(client, post(app.url("/chunked?gap=0.08")), read_timeout=0.25)
            assert len(b"".join(await collect(resp))) == 45
            resp.close()
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_connect_errors(run) -> None:
    async def main() -> None:
        client = new_client()
        try:
            # Nothing listens on this port.
            import socket

            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                free = s.getsockname()[1]
            with pytest.raises(GatewayError) as info:
                await send(client, post(f"http://127.0.0.1:{free}/x"))
            assert info.value.status == 502 and info.value.code == "connection_error" and info.value.retryable
            assert info.value.message == "cannot reach upstream 127.0.0.1 (ConnectionRefusedError)"
            with pytest.raises(GatewayError) as info:
                await send(client, post("http://no-such-host.invalid/x"))
            assert info.value.status == 502 and info.value.code == "connection_error"
        finally:
            await client.close()

    run(main)


def test_connect_timeout(run) -> None:
    """A listening socket whose accept queue is full drops our SYN: the connect hangs."""
    import socket

    async def main() -> None:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                s = socket.socket()
                s.setblocking(False)
                try:
                    s.connect(("127.0.0.1", port))
                except BlockingIOError:
                    pass
                fillers.append(s)
            await asyncio.sleep(0.05)
            client = new_client()
            started = asyncio.get_running_loop().time()
            with pytest.raises(GatewayError) as info:
                await send(client, post(f"http://127.0.0.1:{port}/x"), connect_timeout=0.3)
            elapsed = asyncio.get_running_loop().time() - started
            await client.close()
            assert info.value.status == 504 and info.value.code == "timeout"
            assert elapsed < 2.0
        finally:
            for s in fillers:
                s.close()
            listener.close()

    run(main)


def test_reset_mid_body(run) -> None:
    async def main() -> None:
        def behaviour(proto: Raw, count: int) -> None:
            proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 100)
            asyncio.get_running_loop().call_later(0.05, proto.transport.abort)

        server, port, _ = await raw_server(behaviour)
        client = new_client()
        try:
            resp = await send(client, post(f"http://127.0.0.1:{port}/x"))
            with pytest.raises(GatewayError) as info:
                await collect(resp)
            resp.close()
            assert info.value.status == 502 and info.value.code == "connection_error"
            assert "connection broke mid-stream" in info.value.message
            resp = await send(client, post(f"http://127.0.0.1:{port}/x"))
            with pytest.raises(GatewayError) as info:
                await resp.read()
            resp.close()
            assert "failed while sending the response" in info.value.message
            assert client.idle_connections == 0
        finally:
            await client.close()
            server.close()

    run(main)


def test_whole_body_send_returns_with_the_body_in(run) -> None:
    """``wait="whole_body"``: the headers alone do not end the wait; failures after them are worded as read()'s."""
    async def main() -> None:
        served = [0]  # across connections: the second answer breaks the connection

        def behaviour(proto: Raw, count: int) -> None:
            loop = asyncio.get_running_loop()
            served[0] += 1
            count = served[0]
            if count == 1:  # headers now, the body 50 ms later, in two writes
                proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")
                loop.call_later(0.05, proto.transport.write, b"01234")
                loop.call_later(0.08, proto.transport.write, b"56789")
            elif count == 2:  # the connection breaks after the headers
                proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123")
                loop.call_later(0.05, proto.transport.abort)
            else:  # silence after the headers
                proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")

        server, port, _ = await raw_server(behaviour)
        client = new_client()
        try:
            started = time.perf_counter()
            resp = await client.send(post(f"http://127.0.0.1:{port}/x"), connect_timeout=2.0, read_timeout=5.0,
                                     wait="whole_body")
            assert time.perf_counter() - started >= 0.07
            assert resp.status == 200 and resp.complete
            assert await resp.read() == b"0123456789"
            resp.close()
            assert client.idle_connections == 1  # complete: back in the pool
            with pytest.raises(GatewayError) as info:
                await client.send(post(f"http://127.0.0.1:{port}/x"), connect_timeout=2.0, read_timeout=5.0,
                                  wait="whole_body")
            assert info.value.status == 502 and "failed while sending the response" in info.value.message
            with pytest.raises(GatewayError) as info:
                await client.send(post(f"http://127.0.0.1:{port}/x"), connect_timeout=2.0, read_timeout=0.2,
                                  wait="whole_body")
            assert info.value.status == 504 and "timed out sending the response" in info.value.message
        finally:
            await client.close()
            server.close()

    run(main)


def test_first_bytes_send_returns_with_body_bytes_in(run) -> None:
    """``first_bytes``: a stream's first read does not wait again; bytes before a failure still come first."""
    async def main() -> None:
        served = [0]

        def behaviour(proto: Raw, count: int) -> None:
            loop = asyncio.get_running_loop()
            served[0] += 1
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            if served[0] == 1:  # headers now, the first chunk 50 ms later, the end 50 ms after that
                proto.transport.write(head)
                loop.call_later(0.05, proto.transport.write, b"5\r\nfirst\r\n")
                loop.call_later(0.1, proto.transport.write, b"4\r\nnext\r\n0\r\n\r\n")
            elif served[0] == 2:  # a chunk, then the connection breaks
                proto.transport.write(head + b"5\r\nfirst\r\n")
                loop.call_later(0.05, proto.transport.abort)
            else:  # the connection breaks after the headers
                proto.transport.write(head)
                loop.call_later(0.05, proto.transport.abort)

        server, port, _ = await raw_server(behaviour)
        client = new_client()
        try:
            started = time.perf_counter()
            resp = await client.send(post(f"http://127.0.0.1:{port}/x"), connect_timeout=2.0, read_timeout=5.0,
                                     wait="first_bytes")
            assert 0.04 <= time.perf_counter() - started < 0.09  # after the first chunk, before the end
            assert resp.status == 200 and not resp.complete
            assert await collect(resp) == [b"first", b"next"]
            resp.close()
            resp = await client.send(post(f"http://127.0.0.1:{port}/x"), connect_timeout=2.0, read_timeout=5.0,
                                     wait="first_bytes")
            it = resp.iter_chunks().__aiter__()
            assert await it.__anext__() == b"first"
            with pytest.raises(GatewayError) as info:
                await it.__anext__()
            resp.close()
            assert "connection broke mid-stream" in info.value.message
            with pytest.raises(GatewayError) as info:
                await client.send(post(f"http://127.0.0.1:{port}/x"), connect_timeout=2.0, read_timeout=5.0,
                                  wait="first_bytes")
            assert info.value.status == 502 and "failed while sending the response" in info.value.message
            with pytest.raises(ValueError):
                await client.send(post(f"http://127.0.0.1:{port}/x"), wait="body")
        finally:
            await client.close()
            server.close()

    run(main)


def test_chunks_received_before_a_reset_are_delivered_first(run) -> None:
    async def main() -> None:
        def behaviour(proto: Raw, count: int) -> None:
            proto.transport.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            asyncio.get_running_loop().call_later(0.05, proto.transport.abort)

        server, port, _ = await raw_server(behaviour)
        client = new_client()
        try:
            resp = await send(client, post(f"http://127.0.0.1:{port}/x"))
            it = resp.iter_chunks().__aiter__()
            await asyncio.sleep(0.15)  # the reset has happened by now
            assert await it.__anext__() == b"hello"
            with pytest.raises(GatewayError):
                await it.__anext__()
            resp.close()
        finally:
            await client.close()
            server.close()

    run(main)


def test_body_until_close_and_connection_close(run) -> None:
    async def main() -> None:
        def behaviour(proto: Raw, count: int) -> None:
            proto.transport.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\npart one ")
            loop = asyncio.get_running_loop()
            loop.call_later(0.02, proto.transport.write, b"part two")
            loop.call_later(0.04, proto.transport.close)

        server, port, _ = await raw_server(behaviour)
        client = new_client()
        try:
            resp = await send(client, post(f"http://127.0.0.1:{port}/x"))
            assert await resp.read() == b"part one part two"
            resp.close()
            resp = await send(client, post(f"http://127.0.0.1:{port}/x"))
            assert b"".join(await collect(resp)) == b"part one part two"
            resp.close()
            assert client.connections_opened == 2 and client.idle_connections == 0
        finally:
            await client.close()
            server.close()

    run(main)


def test_closed_connections_are_freed_without_the_collector(run) -> None:
    """A closed connection and its parser (which holds it) must go by reference counting:
    5,000 slow streams through upstreams that close piled them up for the collector."""
    async def main() -> None:
        def behaviour(proto: Raw, count: int) -> None:
            proto.transport.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
            proto.transport.close()

        server, port, _ = await raw_server(behaviour)
        client = new_client()
        gc.collect()
        gc.disable()
        try:
            for _ in range(10):
                resp = await send(client, post(f"http://127.0.0.1:{port}/x"))
                assert await resp.read() == b"ok"
                resp.close()
            await asyncio.sleep(0.05)  # connection_lost runs after the transport closes
            assert client.connections_opened == 10 and client.open_connections == 0
            left = [o for o in gc.get_objects() if type(o).__qualname__ == "_Connection"
                    and type(o).__module__ == "fastgw._core.httpclient"]
            assert left == [], f"{len(left)} closed connections wait for the collector"
        finally:
            gc.enable()
            await client.close()
            server.close()

    run(main)


def test_interim_1xx_response_is_skipped(run) -> None:
    async def main() -> None:
        def behaviour(proto: Raw, count: int) -> None:
            proto.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"done"))

        server, port, _ = await raw_server(behaviour)
        client = new_client()
        try:
            resp = await send(client, post(f"http://127.0.0.1:{port}/x"))
            assert resp.status == 200 and await resp.read() == b"done"
            resp.close()
        finally:
            await client.close()
            server.close()

    run(main)


def test_large_bodies_both_ways(run) -> None:
    async def main() -> None:
        app = await App().start()
        client = new_client()
        try:
            payload = os.urandom(8 * 1024 * 1024)
            resp = await send(client, post(app.url("/big"), payload), read_timeout=20)
            assert await resp.read() == payload[::-1]
            resp.close()
            resp = await send(client, post(app.url("/big"), payload), read_timeout=20)
            assert b"".join(await collect(resp)) == payload[::-1]
            resp.close()
            assert client.connections_opened == 1
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_backpressure_pauses_reading_for_a_slow_consumer(run) -> None:
    """While the consumer does not read, the client stops reading the socket, so the
    server's send buffer fills up instead of the gateway's memory."""

    async def main() -> None:
        servers: list[Raw] = []
        total = 32 * 1024 * 1024

        def behaviour(proto: Raw, count: int) -> None:
            servers.append(proto)
            proto.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
            proto.transport.write(b"z" * total)

        server, port, _ = await raw_server(behaviour)
        client = new_client()
        try:
            resp = await send(client, post(f"http://127.0.0.1:{port}/x"))
            await asyncio.sleep(0.3)
            # Most of the body is still queued on the server side: we stopped reading.
            assert servers[0].transport.get_write_buffer_size() > total // 2
            received = 0
            async for chunk in resp.iter_chunks():
                received += len(chunk)
            resp.close()
            assert received == total
        finally:
            await client.close()
            server.close()

    run(main)


def test_gzip_body_is_decoded(run) -> None:
    async def main() -> None:
        app = await App().start()
        client = new_client()
        try:
            resp = await send(client, post(app.url("/gzip")))
            assert await resp.read() == b"hello " * 1000
            resp.close()
            resp = await send(client, post(app.url("/gzip")))
            assert b"".join(await collect(resp)) == b"hello " * 1000
            resp.close()
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_error_status_and_repeated_headers(run) -> None:
    async def main() -> None:
        app = await App().start()
        client = new_client()
        try:
            resp = await send(client, post(app.url("/status/429")))
            assert resp.status == 429
            assert resp.headers["retry-after"] == "7"
            assert await resp.read() == b'{"error":{"message":"nope"}}'
            resp.close()
            assert client.idle_connections == 1  # an error status is still a complete response
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_close_before_the_end_aborts_the_connection(run) -> None:
    async def main() -> None:
        app = await App().start()
        client = new_client()
        try:
            resp = await send(client, post(app.url("/slow")))
            it = resp.iter_chunks().__aiter__()
            assert await it.__anext__() == b"first"
            resp.close()
            assert client.idle_connections == 0 and client.open_connections == 0
            # The next request works on a fresh connection.
            resp = await send(client, post(app.url("/echo"), b"ok"))
            assert await resp.read() == b"ok"
            resp.close()
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_cancelling_a_waiting_request_aborts_its_connection(run) -> None:
    async def main() -> None:
        def silent(proto: Raw, count: int) -> None:
            pass

        server, port, log = await raw_server(silent)
        client = new_client()
        try:
            task = asyncio.ensure_future(send(client, post(f"http://127.0.0.1:{port}/x")))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await asyncio.sleep(0.05)
            assert client.open_connections == 0
            assert log[0].transport.is_closing() or log[0].transport.get_extra_info("socket") is None or True
        finally:
            await client.close()
            server.close()

    run(main)


def test_bad_header_values_are_refused(run) -> None:
    async def main() -> None:
        app = await App().start()
        client = new_client()
        try:
            with pytest.raises(ValueError):
                await send(client, post(app.url("/echo"), b"x", {"x-evil": "a\r\nInjected: 1"}))
        finally:
            await client.close()
            await app.stop()

    run(main)


def test_invalid_response_is_a_connection_error(run) -> None:
    async def main() -> None:
        def garbage(proto: Raw, count: int) -> None:
            proto.transport.write(b"SPDY/9 what\r\n\r\n")

        server, port, _ = await raw_server(garbage)
        client = new_client()
        try:
            with pytest.raises(GatewayError) as info:
                await send(client, post(f"http://127.0.0.1:{port}/x"))
            assert info.value.status == 502 and info.value.code == "connection_error"
        finally:
            await client.close()
            server.close()

    run(main)


# --------------------------------------------------------------------------------------------
# TLS
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost/127.0.0.1 (cryptography if present, else openssl)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither cryptography nor the openssl CLI is available")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"], check=True, capture_output=True)
        return cert, key
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(private.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                    x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .sign(private, hashes.SHA256())
    )
    key.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return cert, key


def test_tls(run, certificate) -> None:
    cert, key = certificate

    async def main() -> None:
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(cert, key)
        app = await App().start(ssl_context=server_ctx)
        trusting = ssl.create_default_context(cafile=str(cert))
        client = new_client(ssl_context=trusting)
        default_client = new_client()
        try:
            for host in ("localhost", "127.0.0.1"):
                resp = await send(client, post(app.url("/echo", "https", host), b"secret"))
                assert await resp.read() == b"secret"
                resp.close()
                resp = await send(client, post(app.url("/chunked", "https", host)))
                assert b"".join(await collect(resp)).startswith(b"data: 0")
                resp.close()
            assert client.connections_opened == 2  # one per (scheme, host, port), reused
            # Without trusting the self-signed certificate, the handshake fails: a 502.
            with pytest.raises(GatewayError) as info:
                await send(default_client, post(app.url("/echo", "https", "localhost")))
            assert info.value.status == 502 and info.value.code == "connection_error"
            assert "SSL" in info.value.message or "Certificate" in info.value.message
        finally:
            await client.close()
            await default_client.close()
            await app.stop()

    run(main)


# --------------------------------------------------------------------------------------------
# Glue: FastTransport / AutoTransport
# --------------------------------------------------------------------------------------------

def test_transports_choose_per_url(run, monkeypatch) -> None:
    monkeypatch.delenv("FASTGW_UPSTREAM_CLIENT", raising=False)
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)

    async def main() -> None:
        app = await App().start()
        auto = AutoTransport()
        fast = FastTransport()
        await auto.start()
        await fast.start()
        try:
            resp = await auto.send(post(app.url("/echo"), b"a"), connect_timeout=1, read_timeout=5)
            assert isinstance(resp, Response) and await resp.read() == b"a"
            resp.close()
            # Credentials in the URL: aiohttp handles it.
            url = app.url("/echo").replace("http://", "http://user:pw@")
            resp = await auto.send(post(url, b"b"), connect_timeout=1, read_timeout=5)
            assert not isinstance(resp, Response) and await resp.read() == b"b"
            resp.close()
            # HEAD (no body whatever the headers say): aiohttp.
            resp = await auto.send(post(app.url("/echo"), None, {}, method="HEAD"), connect_timeout=1, read_timeout=5)
            assert not isinstance(resp, Response) and resp.status == 200
            resp.close()
            with pytest.raises(GatewayError) as info:
                await fast.send(post("ftp://example/x"), connect_timeout=1, read_timeout=1)
            assert info.value.code == "config_error"
        finally:
            await auto.close()
            await fast.close()
            await app.stop()

    run(main)


def test_proxy_environment_sends_through_aiohttp(run, monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "localhost")
    monkeypatch.delenv("FASTGW_UPSTREAM_CLIENT", raising=False)

    async def main() -> None:
        auto = AutoTransport()
        await auto.start()
        try:
            assert auto._use_fast("http://localhost:1234/v1/x")
            assert not auto._use_fast("https://api.example.com/v1/x")
        finally:
            await auto.close()

    run(main)


def test_forced_mode(run, monkeypatch) -> None:
    async def main() -> None:
        app = await App().start()
        auto = AutoTransport("aiohttp")
        await auto.start()
        try:
            resp = await auto.send(post(app.url("/echo"), b"a"), connect_timeout=1, read_timeout=5)
            assert not isinstance(resp, Response) and await resp.read() == b"a"
            resp.close()
        finally:
            await auto.close()
            await app.stop()

    run(main)
