"""The compiled HTTP/1.1 protocol under uvicorn, spoken to over raw sockets.

Each test runs a real ``uvicorn.Server`` (uvloop, ``http=HttpProtocol``) in a thread
with a small ASGI app, and checks the bytes on the wire: framing, keep-alive,
pipelining, 100-continue, HEAD/204, streaming, flow control, disconnects, errors.
"""
from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
import uvicorn

from fastgw._core.server import BUSY_POLL_DEFAULT_US, BUSY_POLL_ENV, HttpProtocol


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerThread:
    def __init__(self, app, http=HttpProtocol, **options) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, loop="uvloop", http=http,
                                lifespan="off", log_level="critical", **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.01)

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture(params=["compiled", "uvicorn"])
def serve(request):
    """Every behaviour is checked against uvicorn's own httptools protocol too: same bytes, same semantics."""
    servers: list[ServerThread] = []
    http = HttpProtocol if request.param == "compiled" else "httptools"

    def start(app, **options) -> ServerThread:
        server = ServerThread(app, http=http, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def read_response(sock: socket.socket, buf: bytearray) -> tuple[bytes, dict[bytes, bytes], bytes]:
    """One response off ``sock`` (leftover bytes stay in ``buf``): status line, headers, body."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"closed before headers: {bytes(buf)!r}")
        buf += data
    head, _, rest = bytes(buf).partition(b"\r\n\r\n")
    del buf[:len(head) + 4]
    status, *lines = head.split(b"\r\n")
    headers = {}
    for line in lines:
        name, _, value = line.partition(b": ")
        assert name not in headers, f"duplicate header {name!r}"
        headers[name] = value
    if b"content-length" in headers:
        length = int(headers[b"content-length"])
        if status.split()[1] in (b"204", b"304") or getattr(sock, "_head", False):
            length = 0
        while len(buf) < length:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed mid-body")
            buf += data
        body = bytes(buf[:length])
        del buf[:length]
        return status, headers, body
    if headers.get(b"transfer-encoding") == b"chunked":
        body = b""
        while True:
            while b"\r\n" not in buf:
                buf += sock.recv(65536)
            size_line, _, _ = bytes(buf).partition(b"\r\n")
            size = int(size_line, 16)
            while len(buf) < len(size_line) + 2 + size + 2:
                buf += sock.recv(65536)
            chunk = bytes(buf[len(size_line) + 2:len(size_line) + 2 + size])
            del buf[:len(size_line) + 2 + size + 2]
            if size == 0:
                return status, headers, body
            body += chunk
    return status, headers, b""


def request(method: str = "POST", path: str = "/echo", body: bytes = b"", headers: str = "",
            version: str = "1.1") -> bytes:
    return (f"{method} {path} HTTP/{version}\r\nhost: t\r\ncontent-length: {len(body)}\r\n{headers}\r\n").encode() + body


async def echo_app(scope, receive, send):
    """Echoes the request body; reports method, path and query in headers."""
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": [
        (b"content-type", b"application/octet-stream"), (b"content-length", b"%d" % len(body)),
        (b"x-path", scope["path"].encode()), (b"x-query", scope["query_string"]), (b"x-method", scope["method"].encode()),
        (b"x-raw-path", scope["raw_path"])]})
    await send({"type": "http.response.body", "body": body})


def test_keep_alive_scope_and_default_headers(serve):
    server = serve(echo_app)
    with server.connect() as sock:
        buf = bytearray()
        for i in range(3):
            sock.sendall(request(path=f"/a%20b/{i}?x=1&y=2", body=b"hello %d" % i))
            status, headers, body = read_response(sock, buf)
            assert status == b"HTTP/1.1 200 OK" and body == b"hello %d" % i
            assert headers[b"x-path"] == f"/a b/{i}".encode() and headers[b"x-raw-path"] == f"/a%20b/{i}".encode()
            assert headers[b"x-query"] == b"x=1&y=2" and b"date" in headers and b"connection" not in headers


def test_pipelined_requests_are_answered_in_order(serve):
    async def slow_first(scope, receive, send):
        await receive()
        if scope["path"] == "/0":
            await asyncio.sleep(0.1)
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
        await send({"type": "http.response.body", "body": body})

    server = serve(slow_first)
    with server.connect() as sock:
        sock.sendall(b"".join(request("GET", f"/{i}") for i in range(5)))
        buf = bytearray()
        assert [read_response(sock, buf)[2] for _ in range(5)] == [b"/0", b"/1", b"/2", b"/3", b"/4"]


def test_expect_100_continue(serve):
    server = serve(echo_app)
    with server.connect() as sock:
        body = b"x" * 1000
        sock.sendall(f"POST /e HTTP/1.1\r\nhost: t\r\ncontent-length: {len(body)}\r\nexpect: 100-continue\r\n\r\n"
                     .encode())
        assert sock.recv(100) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        status, _, echoed = read_response(sock, bytearray())
        assert status.endswith(b"200 OK") and echoed == body


def test_chunked_request_body(serve):
    server = serve(echo_app)
    with server.connect() as sock:
        sock.sendall(b"POST /c HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
        assert read_response(sock, bytearray())[2] == b"hello world"


def test_large_request_body_pauses_and_resumes_reading(serve):
    server = serve(echo_app)
    body = bytes(range(256)) * 16384  # 4 MiB
    with server.connect() as sock:
        sender = threading.Thread(target=sock.sendall, args=(request(body=body),))
        sender.start()
        _, headers, echoed = read_response(sock, bytearray())
        sender.join()
        assert echoed == body


def test_head_and_204_have_no_body(serve):
    async def app(scope, receive, send):
        await receive()
        status = 204 if scope["path"] == "/empty" else 200
        headers = [] if status == 204 else [(b"content-length", b"5")]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if status == 204 or scope["method"] == "HEAD"
                    else b"hello"})

    server = serve(app)
    with server.connect() as sock:
        sock.sendall(request("HEAD", "/x") + request("GET", "/empty") + request("GET", "/x"))
        raw = b""
        while raw.count(b"HTTP/1.1") < 3 or not raw.endswith(b"hello"):
            raw += sock.recv(65536)
        first, second, third = raw.split(b"HTTP/1.1 ")[1:]
        assert first.endswith(b"content-length: 5\r\n\r\n"), "HEAD: headers only"
        assert second.startswith(b"204") and second.endswith(b"\r\n\r\n") and b"transfer-encoding" not in second
        assert third.endswith(b"\r\n\r\nhello")


def test_streamed_response_sends_headers_before_a_late_body(serve):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(0.5)
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b"data: 2\n\n", "more_body": False})

    server = serve(app)
    with server.connect() as sock:
        sock.sendall(request("GET", "/s"))
        sock.settimeout(0.3)
        head = sock.recv(65536)
        assert head.startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in head
        assert b"data:" not in head
        sock.settimeout(5)
        buf = bytearray(head.partition(b"\r\n\r\n")[2])
        body = b""
        while not body.endswith(b"0\r\n\r\n"):
            body = bytes(buf) if buf else body
            buf += sock.recv(65536)
            body = bytes(buf)
        assert body == b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"


def test_large_response_to_a_slow_reader_is_complete(serve):
    chunk = b"y" * 262144

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % (64 * len(chunk)))]})
        for i in range(64):
            await send({"type": "http.response.body", "body": chunk, "more_body": i < 63})

    server = serve(app)
    with server.connect() as sock:
        sock.sendall(request("GET", "/big"))
        time.sleep(0.3)  # the server's write buffer fills up and it must wait (pause_writing)
        _, _, body = read_response(sock, bytearray())
        assert len(body) == 64 * len(chunk)


def test_client_disconnect_reaches_the_app(serve):
    seen = []

    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        seen.append((await receive())["type"])

    server = serve(app)
    sock = server.connect()
    sock.sendall(request("GET", "/d"))
    assert b"first" in sock.recv(65536) or b"first" in sock.recv(65536)
    sock.close()
    deadline = time.monotonic() + 5
    while not seen and time.monotonic() < deadline:
        time.sleep(0.01)
    assert seen == ["http.disconnect"]


def test_malformed_request_gets_400_and_close(serve):
    server = serve(echo_app)
    with server.connect() as sock:
        sock.sendall(b"GARBAGE\x01 / HTTP/1.1\r\n\r\n")
        raw = b""
        while data := sock.recv(65536):
            raw += data
        assert raw.startswith(b"HTTP/1.1 400 Bad Request") and b"connection: close" in raw


def test_app_error_before_response_is_a_500(serve):
    async def app(scope, receive, send):
        raise RuntimeError("boom")

    server = serve(app)
    with server.connect() as sock:
        sock.sendall(request("GET", "/e"))
        status, headers, body = read_response(sock, bytearray())
        assert status.endswith(b"500 Internal Server Error") and body == b"Internal Server Error"
        assert headers[b"connection"] == b"close"


@pytest.mark.parametrize("name,value", [(b"x-bad", b"a\r\nset-cookie: evil=1"), (b"x bad", b"v"), (b"x-nul", b"a\x00b")])
def test_header_injection_is_refused(serve, name, value):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(name, value)]})
        await send({"type": "http.response.body", "body": b"x"})

    server = serve(app)
    with server.connect() as sock:
        sock.sendall(request("GET", "/h"))
        raw = b""
        while data := sock.recv(65536):
            raw += data
        assert b"evil" not in raw and name not in raw


def test_header_names_are_lower_cased_and_bytes_like_values_sent(serve):
    """Names in any case go out lower-cased (framing headers still recognised); bytearray
    names and values are accepted, as uvicorn accepts them."""
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 201, "headers": [
            (b"Content-Length", b"2"), (bytearray(b"X-Mixed-Case"), bytearray(b"Value As Is")), (b"x-lower", b"v")]})
        await send({"type": "http.response.body", "body": b"ok"})

    server = serve(app)
    with server.connect() as sock:
        buf = bytearray()
        for _ in range(2):  # framed by the upper-case Content-Length: the connection stays usable
            sock.sendall(request("GET", "/h"))
            status, headers, body = read_response(sock, buf)
            assert status == b"HTTP/1.1 201 Created" and body == b"ok"
            assert headers[b"x-mixed-case"] == b"Value As Is" and headers[b"x-lower"] == b"v"
            assert headers[b"content-length"] == b"2" and b"transfer-encoding" not in headers


def test_http_1_0_closes_after_the_response(serve):
    server = serve(echo_app)
    with server.connect() as sock:
        sock.sendall(request(body=b"abc", version="1.0"))
        raw = b""
        while data := sock.recv(65536):
            raw += data
        assert b"connection: close" in raw and raw.endswith(b"abc")


def test_idle_connection_closed_after_keep_alive_timeout(serve):
    server = serve(echo_app, timeout_keep_alive=0.3)
    with server.connect() as sock:
        sock.sendall(request(body=b"a"))
        read_response(sock, bytearray())
        started = time.monotonic()
        assert sock.recv(10) == b""
        assert 0.2 < time.monotonic() - started < 2.0


def test_busy_connection_is_not_closed_by_keep_alive_timeout(serve):
    async def app(scope, receive, send):
        await receive()
        await asyncio.sleep(0.6)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    server = serve(app, timeout_keep_alive=0.2)
    with server.connect() as sock:
        sock.sendall(request("GET", "/slow"))
        assert read_response(sock, bytearray())[2] == b"ok"


def test_content_length_mismatch_closes_the_connection(serve):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        await send({"type": "http.response.body", "body": b"short"})

    server = serve(app)
    with server.connect() as sock:
        sock.sendall(request("GET", "/m"))
        raw = b""
        while data := sock.recv(65536):
            raw += data
        assert raw.startswith(b"HTTP/1.1 200") and raw.endswith(b"short")


def test_graceful_shutdown_finishes_the_request_in_flight(serve):
    received = threading.Event()

    async def app(scope, receive, send):
        await receive()
        received.set()
        await asyncio.sleep(0.5)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"done"})

    server = serve(app)
    with server.connect() as sock:
        sock.sendall(request("GET", "/g"))
        assert received.wait(10)  # in flight when the shutdown starts
        server.server.should_exit = True
        status, headers, body = read_response(sock, bytearray())
        assert body == b"done" and headers.get(b"connection") == b"close"


def test_over_the_concurrency_limit_is_a_503(serve):
    release, holding = threading.Event(), threading.Event()

    async def app(scope, receive, send):
        await receive()
        if scope["path"] == "/hold":
            holding.set()
            while not release.is_set():
                await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    server = serve(app, limit_concurrency=2)
    with server.connect() as holder:
        holder.sendall(request("GET", "/hold"))  # alone: a second connection now would refuse it too
        assert holding.wait(10)
        other = server.connect()  # the second connection reaches the limit of 2
        other.sendall(request("GET", "/x"))
        with other:
            status, _, body = read_response(other, bytearray())
        assert status.endswith(b"503 Service Unavailable") and body == b"Service Unavailable"
        release.set()
        assert read_response(holder, bytearray())[2] == b"ok"


def test_closed_connections_are_freed_without_the_collector():
    """No reference cycle outlives a connection: with the collector off, nothing of 20 closed
    connections (protocol, request cycles) is left (they used to wait for a full collection)."""
    import gc

    server = ServerThread(echo_app, http=HttpProtocol)
    try:
        def alive() -> int:
            return sum(1 for o in gc.get_objects() if type(o).__name__ in ("HttpProtocol", "RequestCycle")
                       and type(o).__module__ == "fastgw._core.server")

        gc.collect()
        gc.disable()
        try:
            before = alive()
            for _ in range(20):
                with server.connect() as sock:
                    sock.sendall(request(body=b"x"))
                    assert read_response(sock, bytearray())[2] == b"x"
            deadline = time.monotonic() + 5
            while alive() > before and time.monotonic() < deadline:
                time.sleep(0.02)  # the server thread sees each close shortly after
            assert alive() == before
        finally:
            gc.enable()
    finally:
        server.stop()


@pytest.mark.parametrize("env, window", [(None, BUSY_POLL_DEFAULT_US * 1e-6), ("0", 0.0), ("120", 120e-6),
                                         ("not a number", BUSY_POLL_DEFAULT_US * 1e-6),
                                         ("-5", BUSY_POLL_DEFAULT_US * 1e-6)])
def test_requests_kick_the_servers_busy_poller(monkeypatch, env, window):
    """One poller per server, its window from ``FASTGW_BUSY_POLL_US`` (a bad value: the
    default, with a warning); every request's bytes kick it unless the window is 0."""
    if env is None:
        monkeypatch.delenv(BUSY_POLL_ENV, raising=False)
    else:
        monkeypatch.setenv(BUSY_POLL_ENV, env)
    server = ServerThread(echo_app)
    try:
        with server.connect() as sock:
            buf = bytearray()
            for i in range(3):
                sock.sendall(request(body=b"%d" % i))
                assert read_response(sock, buf)[2] == b"%d" % i
                time.sleep(0.01)  # longer than any window here: each request starts from sleep
        poller = server.server.server_state.busy_poll
        assert poller.window == pytest.approx(window)
        assert poller.kicks == (3 if window else 0)
    finally:
        server.stop()
