# cython: language_level=3
"""The HTTP/1.1 server side of the hot path: a uvicorn protocol class, compiled.

uvicorn keeps what it does well (sockets, workers, signals, lifespan, graceful
shutdown); this replaces its per-connection protocol (``--http httptools``), which
was ~13% of a proxied request's instructions: a Python object and an ``asyncio.Event``
per request, a regex per response header, a keep-alive timer cancelled and re-created
on every request, and a separate socket write for the status line and headers.

Here: llhttp (through httptools) parses, one ``cdef`` object per request carries the
ASGI ``receive``/``send`` pair, header names and values are checked in C, the status
line and headers go out in the same write as the first body bytes, and one lazy
keep-alive timer serves a connection for its whole life. The behaviour follows
uvicorn's: the same ASGI scope, pipelining, ``Expect: 100-continue``, HEAD, 204/304,
chunked or Content-Length framing, flow control both ways, ``connection: close`` and
HTTP/1.0, a 400 for unparsable requests, a 500 when the app fails before responding,
``http.disconnect`` when the client goes away, and ``shutdown()`` for uvicorn's
graceful stop.
"""
import asyncio
import http
import logging
import os
import urllib.parse

import httptools

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE

from fastgw._core.busypoll cimport BusyPoll

cdef object log = logging.getLogger("uvicorn.error")
cdef Py_ssize_t HIGH_WATER_LIMIT = 65536  # request body buffered before reading pauses (as uvicorn)
cdef object _unquote = urllib.parse.unquote
cdef object _parse_url = httptools.parse_url
cdef object _ParserError = httptools.HttpParserError
cdef object _ParserUpgrade = httptools.HttpParserUpgrade

cdef dict _STATUS_LINES = {}
for _code in range(100, 600):
    try:
        _phrase = http.HTTPStatus(_code).phrase.encode()
    except ValueError:
        _phrase = b""
    _STATUS_LINES[_code] = b"HTTP/1.1 %d %s\r\n" % (_code, _phrase)

# RFC 9110 token characters: the only bytes allowed in a header name.
cdef unsigned char _TOKEN[256]
for _i in range(256):
    _TOKEN[_i] = 0
for _c in list(b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"):
    _TOKEN[_c] = 1

cdef dict DISCONNECT = {"type": "http.disconnect"}

BUSY_POLL_ENV = "FASTGW_BUSY_POLL_US"  # set by `fastgw serve --busy-poll-us`
BUSY_POLL_DEFAULT_US = 50.0
BUSY_POLL_MAX_US = 1e6


cdef BusyPoll _busy_poll(server_state, loop):
    """The server's one poller (``busypoll.BusyPoll``), made by its first connection."""
    poller = getattr(server_state, "busy_poll", None)
    if poller is None:
        raw = os.environ.get(BUSY_POLL_ENV, "")
        try:
            window_us = float(raw) if raw else BUSY_POLL_DEFAULT_US
            if not 0 <= window_us <= BUSY_POLL_MAX_US:
                raise ValueError
        except ValueError:
            log.warning("%s=%r is not a number of microseconds (0 to %g); using %g",
                        BUSY_POLL_ENV, raw, BUSY_POLL_MAX_US, BUSY_POLL_DEFAULT_US)
            window_us = BUSY_POLL_DEFAULT_US
        poller = BusyPoll(loop, window_us * 1e-6)
        server_state.busy_poll = poller
    return poller


cdef inline bint _valid_name(bytes name):
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(name)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(name), i
    if n == 0:
        return False
    for i in range(n):
        if not _TOKEN[p[i]]:
            return False
    return True


cdef inline bint _has_upper(bytes name):
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(name)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(name), i
    for i in range(n):
        if 0x41 <= p[i] <= 0x5a:
            return True
    return False


cdef inline bint _valid_value(bytes value):
    """No control characters but horizontal tab: CR/LF would split the response."""
    cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(value)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(value), i
    cdef unsigned char c
    for i in range(n):
        c = p[i]
        if (c < 0x20 and c != 0x09) or c == 0x7f:
            return False
    return True


cdef class HttpProtocol:
    """One client connection (an ``asyncio.Protocol``; uvicorn's ``http=`` class)."""

    cdef object config, app, loop, server_state, app_state, connections, tasks
    cdef str asgi_version
    cdef object transport, parser
    cdef object server, client
    cdef str scheme, root_path
    cdef double keep_alive_timeout
    cdef object _ka_timer
    cdef double _idle_since  # loop time the last response completed; < 0 while a request is being served
    cdef object pipeline  # requests read while an earlier one is still being answered
    cdef bytes url
    cdef list headers
    cdef dict scope
    cdef bint expect_100
    cdef RequestCycle cycle  # the request being read (the newest)
    cdef RequestCycle active  # the request being answered
    cdef object limit_concurrency
    cdef bint read_paused, write_paused
    cdef object _drain_waiter
    cdef object _default_source
    cdef bytes _default_block
    cdef BusyPoll poller  # keeps the loop polling between a request's steps (busypoll.pyx)

    def __init__(self, config, server_state, app_state, _loop=None):
        if not config.loaded:
            config.load()
        self.config = config
        self.asgi_version = config.asgi_version  # a property computed per call: read once
        self.app = config.loaded_app
        self.loop = _loop or asyncio.get_event_loop()
        self.server_state = server_state
        self.app_state = app_state
        self.connections = server_state.connections
        self.tasks = server_state.tasks
        self.root_path = config.root_path
        self.keep_alive_timeout = config.timeout_keep_alive
        self.limit_concurrency = config.limit_concurrency
        self.parser = httptools.HttpRequestParser(self)
        try:  # answer the first of pipelined requests even if the client half-closes after sending
            self.parser.set_dangerous_leniencies(lenient_data_after_close=True)
        except AttributeError:
            pass
        self.pipeline = []
        self._idle_since = -1.0
        self._default_source = None
        self.poller = _busy_poll(server_state, self.loop)

    # -- asyncio.Protocol ----------------------------------------------------------------
    def connection_made(self, transport):
        self.connections.add(self)
        self.transport = transport
        self.server = _address(transport.get_extra_info("sockname"))
        self.client = _address(transport.get_extra_info("peername"))
        self.scheme = "https" if transport.get_extra_info("sslcontext") else "http"
        self._idle_since = self.loop.time()
        self._arm_keep_alive(self.keep_alive_timeout)

    def connection_lost(self, exc):
        self.connections.discard(self)
        cdef RequestCycle cycle
        for cycle in (self.active, self.cycle):
            if cycle is not None:
                if not cycle.complete:
                    cycle.disconnected = True
                cycle.set_event()
        for cycle in self.pipeline:
            cycle.disconnected = True
        self._wake_drain()
        if exc is None:
            self.transport.close()
        if self._ka_timer is not None:
            self._ka_timer.cancel()
            self._ka_timer = None
        # Break the reference cycles (transport <-> protocol <-> request cycles) so refcounting
        # frees the connection now. Left to the collector, connections that lived a few seconds
        # reached the oldest generation and piled up between full collections (soak: RSS +24 MB
        # in 10 minutes of reconnecting clients).
        self.parser = None
        self.cycle = None
        self.active = None
        self.pipeline = []
        self.scope = None
        self.headers = None
        self.transport = None

    def eof_received(self):
        pass

    def data_received(self, data):
        self._idle_since = -1.0
        self.poller.kick()
        try:
            self.parser.feed_data(data)
        except _ParserUpgrade:
            pass  # no protocol upgrades (WebSocket) here: the request was answered as plain HTTP
        except _ParserError:
            log.warning("Invalid HTTP request received.")
            self._send_400("Invalid HTTP request received.")

    def pause_writing(self):
        self.write_paused = True

    def resume_writing(self):
        self.write_paused = False
        self._wake_drain()

    # -- uvicorn's server ------------------------------------------------------------------
    def shutdown(self):
        """Graceful stop: close an idle connection now, a busy one after its response."""
        if self.cycle is None or self.cycle.complete:
            self.transport.close()
        else:
            self.cycle.keep_alive = False

    # -- parser callbacks -------------------------------------------------------------------
    def on_message_begin(self):
        self.url = b""
        self.expect_100 = False
        self.headers = []
        self.scope = {
            "type": "http",
            "asgi": {"version": self.asgi_version, "spec_version": "2.3"},
            "http_version": "1.1",
            "server": self.server,
            "client": self.client,
            "scheme": self.scheme,
            "root_path": self.root_path,
            "headers": self.headers,
            "state": self.app_state.copy(),
        }

    def on_url(self, bytes url):
        self.url = self.url + url if self.url else url

    def on_header(self, bytes name, bytes value):
        name = name.lower()
        if name == b"expect" and value.lower() == b"100-continue":
            self.expect_100 = True
        self.headers.append((name, value))

    def on_headers_complete(self):
        parser = self.parser
        scope = self.scope
        http_version = parser.get_http_version()
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        parsed = _parse_url(self.url)
        raw_path = parsed.path
        path = raw_path.decode("ascii")
        if "%" in path:
            path = _unquote(path)
        if self.root_path:
            scope["path"] = self.root_path + path
            scope["raw_path"] = self.root_path.encode("ascii") + raw_path
        else:
            scope["path"] = path
            scope["raw_path"] = raw_path
        scope["query_string"] = parsed.query or b""
        cycle = RequestCycle(self, scope, self.expect_100,
                             http_version != "1.0" and parser.should_keep_alive())
        if self.limit_concurrency is not None and (len(self.connections) >= self.limit_concurrency
                                                   or len(self.tasks) >= self.limit_concurrency):
            log.warning("Exceeded concurrency limit.")
            cycle.app = _service_unavailable
        previous = self.cycle
        self.cycle = cycle
        if previous is None or previous.complete:
            self._start(cycle)
        else:
            self._pause_reading()
            self.pipeline.append(cycle)

    def on_body(self, bytes body):
        cdef RequestCycle cycle = self.cycle
        if cycle.complete:
            return
        if cycle.body:
            cycle.body += body
        else:
            cycle.body = body
        if PyBytes_GET_SIZE(cycle.body) > HIGH_WATER_LIMIT:
            self._pause_reading()
        cycle.set_event()

    def on_message_complete(self):
        cdef RequestCycle cycle = self.cycle
        if cycle.complete:
            return
        cycle.more_body = False
        cycle.set_event()

    # -- internals ----------------------------------------------------------------------------
    cdef _start(self, RequestCycle cycle):
        self.active = cycle
        task = self.loop.create_task(cycle.run_asgi(cycle.app if cycle.app is not None else self.app))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)

    cdef on_response_complete(self):
        self.server_state.total_requests += 1
        if self.transport is None or self.transport.is_closing():
            return
        self._resume_reading()
        if self.pipeline:
            self._start(<RequestCycle>self.pipeline.pop(0))
        else:
            self._idle_since = self.loop.time()

    cdef _arm_keep_alive(self, double delay):
        self._ka_timer = self.loop.call_later(delay, self._keep_alive_check)

    def _keep_alive_check(self):
        """One timer per connection: closes it after ``timeout_keep_alive`` without a request."""
        self._ka_timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self._idle_since < 0 or (self.cycle is not None and not self.cycle.complete):
            self._arm_keep_alive(self.keep_alive_timeout)
            return
        remaining = self._idle_since + self.keep_alive_timeout - self.loop.time()
        if remaining > 0:
            self._arm_keep_alive(remaining)
        else:
            self.transport.close()

    cdef bytes default_headers(self):
        """Date and configured headers, encoded once per change (uvicorn swaps the list each second)."""
        source = self.server_state.default_headers
        if source is not self._default_source:
            self._default_block = b"".join([name + b": " + value + b"\r\n" for name, value in source])
            self._default_source = source
        return self._default_block

    cdef _pause_reading(self):
        if not self.read_paused and self.transport is not None:
            self.read_paused = True
            self.transport.pause_reading()

    cdef _resume_reading(self):
        if self.read_paused and self.transport is not None:
            self.read_paused = False
            self.transport.resume_reading()

    cdef _wake_drain(self):
        waiter = self._drain_waiter
        if waiter is not None:
            self._drain_waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self):
        while self.write_paused and self.transport is not None and not self.transport.is_closing():
            if self._drain_waiter is None:
                self._drain_waiter = self.loop.create_future()
            await asyncio.shield(self._drain_waiter)

    cdef _send_400(self, str message):
        body = message.encode("ascii")
        self.transport.write(b"".join([
            _STATUS_LINES[400], self.default_headers(), b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(body), b"connection: close\r\n\r\n", body]))
        self.transport.close()


cdef class RequestCycle:
    """One request: the ASGI ``receive`` and ``send`` callables and the response framing."""

    cdef HttpProtocol proto
    cdef dict scope
    cdef object transport
    cdef object app  # None: the server's app (set only to refuse over the concurrency limit)
    cdef public bytes body
    cdef public bint more_body, disconnected, keep_alive, complete
    cdef bint waiting_100, started, chunked, head, event, flush_scheduled, responding
    cdef Py_ssize_t expected_length
    cdef object waiter
    cdef bytes head_block  # status line and headers not yet written (they go with the first body bytes)

    def __cinit__(self, HttpProtocol proto, dict scope, bint expect_100, bint keep_alive):
        self.proto = proto
        self.scope = scope
        self.transport = proto.transport
        self.body = b""
        self.more_body = True
        self.keep_alive = keep_alive
        self.waiting_100 = expect_100
        self.head = scope["method"] == "HEAD"
        self.expected_length = -1
        self.responding = True

    cdef set_event(self):
        self.event = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def run_asgi(self, app):
        try:
            result = await app(self.scope, self.receive, self.send)
        except BaseException as exc:
            log.error("Exception in ASGI application\n", exc_info=exc)
            if not self.started:
                await self._send_500()
            else:
                self.transport.close()
        else:
            if result is not None:
                log.error("ASGI callable should return None, but returned '%s'.", result)
                self.transport.close()
            elif not self.started and not self.disconnected:
                log.error("ASGI callable returned without starting response.")
                await self._send_500()
            elif not self.complete and not self.disconnected:
                log.error("ASGI callable returned without completing response.")
                self.transport.close()
        finally:
            self.responding = False

    async def _send_500(self):
        await self.send({"type": "http.response.start", "status": 500, "headers": [
            (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"21"), (b"connection", b"close")]})
        await self.send({"type": "http.response.body", "body": b"Internal Server Error", "more_body": False})

    async def receive(self):
        if self.waiting_100 and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            self.waiting_100 = False
        if not self.disconnected and not self.complete:
            self.proto._resume_reading()
            if not self.event:
                self.waiter = self.proto.loop.create_future()
                try:
                    await self.waiter
                finally:
                    self.waiter = None
            self.event = False
        if self.disconnected or self.complete:
            return DISCONNECT
        message = {"type": "http.request", "body": self.body, "more_body": self.more_body}
        self.body = b""
        return message

    async def send(self, message):
        if self.proto.write_paused and not self.disconnected:
            await self.proto.drain()
        if self.disconnected:
            return
        if not self.started:
            self._start(message)
        elif not self.complete:
            if message["type"] != "http.response.body":
                raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{message['type']}'.")
            body = message.get("body", b"")
            self._body(body if type(body) is bytes else bytes(body), message.get("more_body", False))
        else:
            raise RuntimeError(f"Unexpected ASGI message '{message['type']}' sent, after response already completed.")

    cdef _start(self, dict message):
        if message["type"] != "http.response.start":
            raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{message['type']}'.")
        self.started = True
        self.waiting_100 = False
        status = message["status"]
        parts = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d \r\n" % status, self.proto.default_headers()]
        has_close = False
        framed = False
        for name, value in message.get("headers", ()):
            # The app's headers are nearly always lower-case bytes already: no copies then
            # (``bytes(b)`` on bytes costs a type call; 2 per header were ~2% of a request).
            if type(name) is not bytes:
                name = bytes(name)
            if type(value) is not bytes:
                value = bytes(value)
            if not _valid_name(name):
                raise RuntimeError("Invalid HTTP header name.")
            if not _valid_value(value):
                raise RuntimeError("Invalid HTTP header value.")
            if _has_upper(name):
                name = name.lower()
            if name == b"content-length" and not framed:
                self.expected_length = int(value)
                framed = True
            elif name == b"transfer-encoding" and value.lower() == b"chunked":
                self.expected_length = -1
                self.chunked = True
                framed = True
            elif name == b"connection":
                if b"close" in [token.strip().lower() for token in value.split(b",")]:
                    self.keep_alive = False
                    has_close = True
            parts.append(name)
            parts.append(b": ")
            parts.append(value)
            parts.append(b"\r\n")
        if not self.keep_alive and not has_close:
            parts.append(b"connection: close\r\n")
        if not framed:
            if self.head or status in (204, 304) or status < 200:
                self.expected_length = 0
            else:
                self.chunked = True
                parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        self.head_block = b"".join(parts)
        if self.chunked and not self.flush_scheduled:
            # A streamed body may take a while to start: the headers must not wait for it.
            self.flush_scheduled = True
            self.proto.loop.call_soon(self._flush_head)

    def _flush_head(self):
        if self.head_block is not None and not self.disconnected and not self.transport.is_closing():
            self.transport.write(self.head_block)
        self.head_block = None

    cdef _body(self, bytes body, bint more_body):
        cdef Py_ssize_t size = PyBytes_GET_SIZE(body)
        pending = self.head_block
        self.head_block = None
        if self.head:
            data = pending
        elif self.chunked:
            if size:
                chunk = b"%x\r\n" % size + body + b"\r\n"
                if not more_body:
                    chunk += b"0\r\n\r\n"
            else:
                chunk = b"" if more_body else b"0\r\n\r\n"
            data = pending + chunk if pending is not None else chunk
        else:
            if size > self.expected_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_length -= size
            data = pending + body if pending is not None else body
        if data:
            self.transport.write(data)
        if not more_body:
            if not self.head and not self.chunked and self.expected_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.complete = True
            self.set_event()
            if not self.keep_alive:
                self.transport.close()
            if self.responding:
                self.proto.on_response_complete()


async def _service_unavailable(scope, receive, send):
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"19"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": b"Service Unavailable", "more_body": False})


cdef object _address(value):
    """(host, port) for TCP sockets, as uvicorn's scope has it; None for other families."""
    if isinstance(value, (tuple, list)) and len(value) >= 2:
        return (str(value[0]), int(value[1]))
    return None


def latin1_headers(dict headers not None):
    """ASGI raw headers from a ``{name: value}`` dict of str, in order. Names are sent as given:
    this protocol (and uvicorn's) lower-cases them on the way out. The routes build a response's
    headers this way, 5-10 per response; a comprehension spent two method calls per header."""
    cdef list raw = []
    for name, value in headers.items():
        raw.append(((<str?>name).encode("latin-1"), (<str?>value).encode("latin-1")))
    return raw
