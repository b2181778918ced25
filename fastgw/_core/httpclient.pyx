# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -O3
"""Pooled keep-alive HTTP/1.1 client for the gateway's upstream calls (uvloop + httptools).

Why: the per-request overhead of a general client (aiohttp) was the largest single cost of
a proxied request in the profiles (see benchmarks/README.md). This client does only what the
upstream path needs, with as few Python objects and event-loop round trips as possible:

* one ``_Connection`` protocol per socket; idle connections pooled per (scheme, host, port),
  most recently used first; connections the server closed leave the pool at once, idle ones
  expire after ``keepalive_timeout``;
* requests written with a single ``transport.write``; responses parsed by httptools
  (llhttp): Content-Length, chunked and read-until-close bodies, gzip/deflate decoded;
* TLS through the loop's ``create_connection(ssl=...)``;
* a connect timeout, and a read timeout that is inactivity-based (like aiohttp's
  ``sock_read``): one timer per request, re-armed only when it fires early;
* streaming bodies with backpressure: reading from the socket pauses while more than
  ``HIGH_WATER`` bytes wait for the consumer; the consumer receives everything buffered so
  far in one piece (nothing is held back waiting for more);
* a request that fails on a reused connection before any response byte arrived (the
  server closed it while idle) is sent once more on a fresh connection.

Errors are built by the two factories given to ``HTTPClient`` (the gateway passes
``fastgw.errors.upstream_timeout`` / ``upstream_unreachable``), with the same messages as
the aiohttp transport, so the router sees identical ``GatewayError``s.
"""

import asyncio
import socket
import ssl as _ssl
import zlib
from urllib.parse import quote, urlsplit

import httptools

cdef object _HttpResponseParser = httptools.HttpResponseParser
cdef object _HttpParserError = httptools.HttpParserError
cdef object _CancelledError = asyncio.CancelledError

# Streaming backpressure: while more than HIGH_WATER bytes wait for a slow consumer, the
# socket is not read, so a backlog stays in the kernel's buffers instead of the gateway's
# heap (thousands of concurrent streams). read() accumulates the whole body anyway and
# never pauses.
cdef Py_ssize_t HIGH_WATER = 16 * 1024

# Response states
cdef enum:
    ST_HEADERS = 0      # waiting for the status line and headers
    ST_BODY = 1         # headers done, body arriving
    ST_DONE = 2         # body complete (connection released or closed)
    ST_FAILED = 3       # error recorded in _err_kind
    ST_CLOSED = 4       # closed by the consumer before the end

# What send() waits for before it returns (its ``wait`` argument)
cdef enum:
    WAIT_HEADERS = 0
    WAIT_FIRST_BYTES = 1
    WAIT_WHOLE_BODY = 2

# Error kinds
cdef enum:
    ERR_NONE = 0
    ERR_TIMEOUT = 1
    ERR_CLOSED = 2      # connection lost / reset / EOF before the message ended
    ERR_PROTOCOL = 3    # unparseable response


class ClientClosedError(RuntimeError):
    """``send`` on a client after ``close()``."""


cdef class _Target:
    """A parsed upstream URL: where to connect and what to write on the request line."""
    cdef readonly str scheme, host, path, host_header
    cdef readonly int port
    cdef readonly bint tls
    cdef readonly tuple key

    def __repr__(self):
        return f"_Target({self.scheme}://{self.host}:{self.port}{self.path})"


cdef _Target _parse_target(str url):
    """``None`` when this client cannot serve the URL (the caller falls back to aiohttp)."""
    cdef _Target t
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname or parts.username is not None \
            or parts.password is not None:
        return None
    host = parts.hostname
    if not host.isascii():
        return None
    t = _Target.__new__(_Target)
    t.scheme = scheme
    t.tls = scheme == "https"
    t.host = host
    t.port = port if port is not None else (443 if t.tls else 80)
    bracketed = "[" + host + "]" if ":" in host else host
    if port is None or port == (443 if t.tls else 80):
        t.host_header = bracketed
    else:
        t.host_header = f"{bracketed}:{port}"
    path = parts.path or "/"
    if not path.isascii() or " " in path:
        path = quote(path, safe="/%:@!$&'()*+,;=-._~")
    query = parts.query
    if query:
        if not query.isascii() or " " in query:
            query = quote(query, safe="/%:@!$&'()*+,;=-._~?")
        path = path + "?" + query
    t.path = path
    t.key = (scheme, host, t.port)
    return t


cdef bytes _build_head(str method, _Target t, object headers, Py_ssize_t body_len):
    cdef list parts = [method, " ", t.path, " HTTP/1.1\r\n"]
    cdef bint host_given = False
    cdef str k, v, lk
    if headers:
        for key, value in headers.items():
            k = key if type(key) is str else str(key)
            v = value if type(value) is str else str(value)
            lk = k.lower()
            if lk == "content-length" or lk == "transfer-encoding" or lk == "connection":
                continue
            if lk == "host":
                host_given = True
            if "\n" in v or "\r" in v or "\n" in k or "\r" in k or ":" in k:
                raise ValueError(f"invalid character in upstream request header {k!r}")
            parts.append(k)
            parts.append(": ")
            parts.append(v)
            parts.append("\r\n")
    if not host_given:
        parts.append("Host: ")
        parts.append(t.host_header)
        parts.append("\r\n")
    if body_len >= 0:
        parts.append("Content-Length: ")
        parts.append(str(body_len))
        parts.append("\r\n")
    parts.append("\r\n")
    return "".join(parts).encode("utf-8")


class Headers(dict):
    """Response headers: lowercase names; lookups are case-insensitive. Repeated headers are
    joined with ", " (as HTTP allows for lists)."""

    __slots__ = ()

    def __getitem__(self, key):
        return dict.__getitem__(self, key.lower())

    def get(self, key, default=None):
        return dict.get(self, key.lower(), default)

    def __contains__(self, key):
        return isinstance(key, str) and dict.__contains__(self, key.lower())

    def getall(self, key):
        value = dict.get(self, key.lower())
        return [] if value is None else [value]


cdef class Response:
    """One upstream response: ``status``, ``headers``, ``read()``, ``iter_chunks()``, ``close()``."""

    cdef readonly int status
    cdef list _raw_headers
    cdef object _headers
    cdef HTTPClient _client
    cdef _Connection _conn
    cdef str _host
    cdef int _state
    cdef int _err_kind
    cdef str _err_detail
    cdef bint _got_bytes        # any byte of this response received
    cdef bint _until_close      # body ends with the connection
    cdef bint _paused
    cdef bint _accumulate       # read(): the whole body is wanted, no backpressure
    cdef int _hold              # send(wait=...): what the sender waits for (WAIT_*); 0 once it returned
    cdef list _chunks           # body bytes not yet handed to the consumer
    cdef Py_ssize_t _buffered
    cdef object _waiter         # future the consumer sleeps on (headers / more body / end)
    cdef object _timer
    cdef double _read_timeout
    cdef object _decoder        # zlib decompressobj for gzip/deflate bodies
    cdef object __weakref__

    def __repr__(self):
        return f"<fastgw Response {self.status} from {self._host}>"

    @property
    def headers(self):
        cdef object h = self._headers
        if h is None:
            h = Headers()
            for name, value in self._raw_headers:
                key = name.decode("latin-1").lower()
                text = value.decode("latin-1")
                if key in h:
                    dict.__setitem__(h, key, dict.__getitem__(h, key) + ", " + text)
                else:
                    dict.__setitem__(h, key, text)
            self._headers = h
        return h

    # -- events from the connection -----------------------------------------------------
    cdef inline void _wake(self):
        cdef object w = self._waiter
        if w is not None:
            self._waiter = None
            if not w.done():
                w.set_result(None)

    cdef void _headers_done(self, int status):
        cdef bytes name, value, lname
        cdef bint has_length = False
        cdef bint chunked = False
        cdef object encoding = None
        self.status = status
        for name, value in self._raw_headers:
            lname = name.lower()
            if lname == b"content-length":
                has_length = True
            elif lname == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif lname == b"content-encoding":
                encoding = value.strip().lower()
        if not has_length and not chunked and status >= 200 and status != 204 and status != 304:
            self._until_close = True
        if encoding == b"gzip" or encoding == b"x-gzip":
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == b"deflate":
            self._decoder = zlib.decompressobj()
        self._state = ST_BODY
        if self._hold == WAIT_HEADERS:
            self._wake()

    cdef void _on_body(self, bytes data):
        if self._state >= ST_DONE:
            return
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER and not self._paused and not self._accumulate and self._conn is not None:
            self._paused = True
            self._conn._pause()
        if self._hold != WAIT_WHOLE_BODY:
            self._wake()

    cdef void _on_complete(self):
        if self._state >= ST_DONE:
            return
        self._state = ST_DONE
        if self._paused:
            # The connection goes back to the pool: it must be reading again.
            self._paused = False
            if self._conn is not None:
                self._conn._resume()
        self._conn = None
        self._cancel_timer()
        self._wake()

    cdef void _fail(self, int kind, str detail):
        if self._state >= ST_DONE:
            return
        self._state = ST_FAILED
        self._err_kind = kind
        self._err_detail = detail
        self._cancel_timer()
        self._wake()

    cdef inline void _cancel_timer(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _on_timer(self):
        """Read-timeout timer: fires ``read_timeout`` after the last byte from upstream."""
        cdef _Connection conn = self._conn
        self._timer = None
        if self._state >= ST_DONE or conn is None:
            return
        if self._paused:
            # We stopped reading (the consumer is slow): not the upstream's fault.
            self._timer = self._client._loop.call_later(self._read_timeout, self._on_timer)
            return
        remaining = conn._last_read + self._read_timeout - self._client._loop.time()
        if remaining > 0.001:
            self._timer = self._client._loop.call_later(remaining, self._on_timer)
            return
        self._fail(ERR_TIMEOUT, "timeout")
        conn._abort()

    # -- consumer side --------------------------------------------------------------------
    cdef object _error(self, int context):
        """The GatewayError for the recorded failure, worded for where the consumer is."""
        cdef HTTPClient c = self._client
        cdef str host = self._host
        cdef str detail = self._err_detail or "ServerDisconnectedError"
        if self._err_kind == ERR_TIMEOUT:
            if context == 0:
                return c._timeout_error(f"upstream {host} did not answer in time")
            if context == 1:
                return c._timeout_error(f"upstream {host} timed out sending the response")
            return c._timeout_error(f"upstream {host} stopped sending (read timeout)")
        if context == 0:
            return c._connection_error(f"cannot reach upstream {host} ({detail})")
        if context == 1:
            return c._connection_error(f"upstream {host} failed while sending the response ({detail})")
        return c._connection_error(f"upstream {host} connection broke mid-stream ({detail})")

    cdef bytes _take(self):
        """Everything buffered, as one bytes object (decoded if compressed)."""
        cdef list chunks = self._chunks
        cdef bytes data
        if not chunks:
            return b""
        if len(chunks) == 1:
            data = chunks[0]
        else:
            data = b"".join(chunks)
        self._chunks = []
        self._buffered = 0
        if self._paused:
            self._paused = False
            if self._conn is not None:
                self._conn._resume()
        if self._decoder is not None:
            data = self._decoder.decompress(data)
        return data

    cdef bytes _flush_decoder(self):
        if self._decoder is None:
            return b""
        data = self._decoder.flush()
        self._decoder = None
        return data

    async def read(self):
        """The whole body. The connection goes back to the pool once it is complete."""
        cdef list parts = None
        cdef bytes data
        self._accumulate = True
        if self._paused:
            self._paused = False
            if self._conn is not None:
                self._conn._resume()
        try:
            while True:
                if self._state == ST_DONE:
                    data = self._take()
                    if self._decoder is not None:
                        data = data + self._flush_decoder()
                    if parts is None:
                        return data
                    parts.append(data)
                    return b"".join(parts)
                if self._state == ST_FAILED:
                    raise self._error(1)
                if self._state == ST_CLOSED:
                    raise self._client._connection_error(f"upstream {self._host} response was closed")
                if self._chunks:
                    if parts is None:
                        parts = []
                    parts.append(self._take())
                self._waiter = self._client._loop.create_future()
                await self._waiter
        except _CancelledError:
            self.close()
            raise

    def iter_chunks(self):
        """Body bytes as they arrive; each item is everything received since the last one."""
        return _BodyIterator(self)

    cdef object _next_chunk(self):
        """Buffered bytes, ``None`` if the caller must wait, ``b""`` at the end."""
        cdef bytes data
        if self._chunks:
            data = self._take()
            if data:
                return data
        if self._state == ST_DONE:
            data = self._flush_decoder()
            return data
        if self._state == ST_FAILED:
            raise self._error(2)
        if self._state == ST_CLOSED:
            return b""
        return None

    def close(self):
        """Release the connection; aborts it if the body was not fully read."""
        cdef _Connection conn = self._conn
        if self._state < ST_DONE:
            self._state = ST_CLOSED
            self._conn = None
            self._cancel_timer()
            if conn is not None:
                conn._abort()
            self._wake()
        self._chunks = []
        self._buffered = 0

    @property
    def complete(self):
        """True once the whole body has arrived."""
        return self._state == ST_DONE


cdef class _BodyIterator:
    cdef Response _resp

    def __cinit__(self, Response resp):
        self._resp = resp

    def __aiter__(self):
        return self

    async def __anext__(self):
        cdef Response r = self._resp
        cdef object data
        try:
            while True:
                data = r._next_chunk()
                if data is None:
                    r._waiter = r._client._loop.create_future()
                    await r._waiter
                    continue
                if data:
                    return data
                raise StopAsyncIteration
        except _CancelledError:
            r.close()
            raise


cdef class _Connection:
    """asyncio protocol for one upstream socket; serves one response at a time."""

    cdef HTTPClient _client
    cdef tuple _key
    cdef object _transport
    cdef object _parser
    cdef Response _current
    cdef readonly bint closed
    cdef readonly int uses
    cdef double _last_read
    cdef double _idle_since
    cdef bint _skip_message     # a 1xx interim response is being parsed
    cdef object _lost_waiter    # connect(): waiting for connection_made
    cdef object __weakref__

    def __cinit__(self, HTTPClient client, tuple key):
        self._client = client
        self._key = key
        self._parser = _HttpResponseParser(self)

    # -- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport):
        self._transport = transport
        self._last_read = self._client._loop.time()

    def data_received(self, data):
        cdef Response resp = self._current
        self._last_read = self._client._loop.time()
        if resp is not None:
            resp._got_bytes = True
        if self._parser is None:  # after connection_lost
            return
        try:
            self._parser.feed_data(data)
        except _HttpParserError as exc:
            self._protocol_error(f"invalid HTTP response: {exc}")

    def eof_received(self):
        self._mark_closed()
        return False  # let the transport close; connection_lost follows

    def connection_lost(self, exc):
        cdef Response resp = self._current
        self._mark_closed()
        self._transport = None
        self._parser = None  # it holds this protocol (callbacks): free both by refcount, not the collector
        if resp is None:
            return
        self._current = None
        if resp._state == ST_BODY and resp._until_close and exc is None:
            resp._on_complete()
            return
        if exc is None:
            detail = "ServerDisconnectedError"
        else:
            detail = type(exc).__name__
        resp._fail(ERR_CLOSED, detail)

    def pause_writing(self):
        pass

    def resume_writing(self):
        pass

    # -- httptools callbacks ------------------------------------------------------------------
    def on_header(self, bytes name, bytes value):
        cdef Response resp = self._current
        if resp is not None and not self._skip_message:
            resp._raw_headers.append((name, value))

    def on_headers_complete(self):
        cdef Response resp = self._current
        cdef int status = self._parser.get_status_code()
        if status < 200:
            self._skip_message = True  # 1xx: the real response follows
            if resp is not None:
                resp._raw_headers = []
            return
        if resp is None:
            self._protocol_error("response without a request")
            return
        resp._headers_done(status)

    def on_body(self, bytes body):
        cdef Response resp = self._current
        if resp is not None and not self._skip_message:
            resp._on_body(body)

    def on_message_complete(self):
        cdef Response resp = self._current
        if self._skip_message:
            self._skip_message = False
            return
        if resp is None:
            return
        self._current = None
        resp._on_complete()
        if self.closed or not self._parser.should_keep_alive():
            self._abort()
        else:
            self._client._release(self)

    # -- internals --------------------------------------------------------------------------
    cdef void _mark_closed(self):
        if not self.closed:
            self.closed = True
            self._client._forget(self)

    cdef void _protocol_error(self, str detail):
        cdef Response resp = self._current
        self._current = None
        if resp is not None:
            resp._fail(ERR_PROTOCOL, detail)
        self._abort()

    cdef void _abort(self):
        self._mark_closed()
        if self._transport is not None:
            self._transport.abort()

    cdef void _pause(self):
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    cdef void _resume(self):
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()
            self._last_read = self._client._loop.time()

    cdef int _start(self, Response resp, bytes head, object body) except -1:
        if self._transport is None or self.closed:
            resp._fail(ERR_CLOSED, "ServerDisconnectedError")
            return 0
        self._current = resp
        self._skip_message = False
        self.uses += 1
        if body is not None and len(body) > 0:
            if len(body) <= 65536:
                self._transport.write(head + body)
            else:
                self._transport.writelines((head, body))
        else:
            self._transport.write(head)
        return 0


cdef class HTTPClient:
    """Pooled HTTP/1.1 client implementing fastgw's ``Transport`` protocol (``send``).

    Must be used from one event loop (the one running when it first sends).
    """

    cdef object _loop
    cdef dict _idle                  # key -> list of idle _Connection (most recent last)
    cdef set _busy_or_idle           # every open connection (closed on client close)
    cdef dict _targets               # url -> _Target (or None: unsupported)
    cdef dict _dns                   # (host, port) -> (expires, [sockaddr...])
    cdef object _ssl_context
    cdef object _timeout_error
    cdef object _connection_error
    cdef double _keepalive_timeout
    cdef int _max_idle_per_host
    cdef double _dns_ttl
    cdef object _sweeper
    cdef bint _closed
    cdef readonly int connections_opened
    cdef readonly int requests_sent
    cdef readonly int stale_retries

    def __init__(self, *, timeout_error=None, connection_error=None, ssl_context=None,
                 double keepalive_timeout=30.0, int max_idle_per_host=1024, double dns_ttl=300.0):
        self._loop = None
        self._idle = {}
        self._busy_or_idle = set()
        self._targets = {}
        self._dns = {}
        self._ssl_context = ssl_context
        self._timeout_error = timeout_error or TimeoutError
        self._connection_error = connection_error or ConnectionError
        self._keepalive_timeout = keepalive_timeout
        self._max_idle_per_host = max_idle_per_host
        self._dns_ttl = dns_ttl
        self._closed = False

    # -- URL handling ---------------------------------------------------------------------------
    cpdef object target(self, str url):
        """The parsed target for ``url``, or None if this client cannot serve it."""
        cdef object t = self._targets.get(url, False)
        if t is False:
            t = _parse_target(url)
            if len(self._targets) > 4096:
                self._targets.clear()
            self._targets[url] = t
        return t

    def supports(self, str url):
        return self.target(url) is not None

    # -- pool -----------------------------------------------------------------------------------
    cdef _Connection _acquire(self, tuple key):
        cdef list idle = self._idle.get(key)
        cdef _Connection conn
        cdef double now
        if not idle:
            return None
        now = self._loop.time()
        while idle:
            conn = idle.pop()
            if conn.closed or conn._transport is None or conn._transport.is_closing():
                continue
            if now - conn._idle_since > self._keepalive_timeout:
                conn._abort()
                continue
            return conn
        return None

    cdef void _release(self, _Connection conn):
        cdef list idle
        if self._closed:
            conn._abort()
            return
        idle = self._idle.get(conn._key)
        if idle is None:
            idle = self._idle[conn._key] = []
        conn._idle_since = self._loop.time()
        idle.append(conn)
        if len(idle) > self._max_idle_per_host:
            (<_Connection>idle.pop(0))._abort()
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(max(1.0, self._keepalive_timeout / 2), self._sweep)

    cdef void _forget(self, _Connection conn):
        cdef list idle
        self._busy_or_idle.discard(conn)
        idle = self._idle.get(conn._key)
        if idle:
            try:
                idle.remove(conn)
            except ValueError:
                pass

    def _sweep(self):
        """Close connections idle longer than keepalive_timeout (frees their sockets)."""
        cdef _Connection conn
        cdef double now = self._loop.time()
        cdef bint any_idle = False
        self._sweeper = None
        for key, idle in list(self._idle.items()):
            for conn in list(idle):
                if now - conn._idle_since > self._keepalive_timeout:
                    conn._abort()
            if idle:
                any_idle = True
            else:
                del self._idle[key]
        if any_idle and not self._closed:
            self._sweeper = self._loop.call_later(max(1.0, self._keepalive_timeout / 2), self._sweep)

    @property
    def idle_connections(self):
        return sum(len(v) for v in self._idle.values())

    @property
    def open_connections(self):
        return len(self._busy_or_idle)

    # -- connecting ----------------------------------------------------------------------------
    async def _resolve(self, _Target t):
        key = (t.host, t.port)
        entry = self._dns.get(key)
        now = self._loop.time()
        if entry is not None and entry[0] > now:
            return entry[1]
        infos = await self._loop.getaddrinfo(t.host, t.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
        addrs = []
        for family, _type, _proto, _canon, sockaddr in infos:
            if (family, sockaddr) not in addrs:
                addrs.append((family, sockaddr))
        if len(self._dns) > 1024:
            self._dns.clear()
        self._dns[key] = (now + self._dns_ttl, addrs)
        return addrs

    cdef object _tls_context(self):
        if self._ssl_context is None:
            ctx = _ssl.create_default_context()
            try:
                ctx.set_alpn_protocols(["http/1.1"])
            except (NotImplementedError, AttributeError):
                pass
            self._ssl_context = ctx
        return self._ssl_context

    async def _connect(self, _Target t, double connect_timeout):
        cdef _Connection conn
        cdef str host = t.host
        loop = self._loop
        deadline = loop.time() + connect_timeout
        try:
            addrs = await asyncio.wait_for(self._resolve(t), connect_timeout)
        except asyncio.TimeoutError:
            raise self._timeout_error(f"upstream {host} did not answer in time") from None
        except OSError as exc:
            raise self._connection_error(f"cannot reach upstream {host} ({type(exc).__name__})") from None
        last_exc = None
        for family, sockaddr in addrs:
            conn = _Connection(self, t.key)
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise self._timeout_error(f"upstream {host} did not answer in time")
            try:
                if t.tls:
                    coro = loop.create_connection(lambda: conn, sockaddr[0], sockaddr[1], family=family,
                                                  ssl=self._tls_context(), server_hostname=host)
                else:
                    coro = loop.create_connection(lambda: conn, sockaddr[0], sockaddr[1], family=family)
                transport, _ = await asyncio.wait_for(coro, remaining)
            except asyncio.TimeoutError:
                raise self._timeout_error(f"upstream {host} did not answer in time") from None
            except (OSError, _ssl.SSLError) as exc:
                last_exc = exc
                continue
            sock = transport.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except (OSError, AttributeError):
                    pass
            if self._closed:
                transport.abort()
                raise ClientClosedError("HTTP client is closed")
            self.connections_opened += 1
            self._busy_or_idle.add(conn)
            return conn
        name = type(last_exc).__name__ if last_exc is not None else "no address"
        raise self._connection_error(f"cannot reach upstream {host} ({name})")

    # -- the Transport protocol ------------------------------------------------------------------
    async def send(self, request, *, double connect_timeout=10.0, double read_timeout=600.0, str wait="headers"):
        """Send ``request`` (``method``, ``url``, ``headers``, ``body``) and return the
        ``Response`` once its headers arrived. The body is read with ``read()`` or
        ``iter_chunks()``; ``close()`` must be called in every case.

        ``wait``: ``"first_bytes"`` returns once body bytes are in as well (or the body is
        over), ``"whole_body"`` once all of it is (``read()`` then returns at once). A caller
        that reads the body next saves a wake-up of the event loop when the headers and the
        body arrive in separate reads (nginx's sendfile, TLS records). A failure after the
        headers is then raised here, worded as ``read()`` words it."""
        cdef _Target t
        cdef _Connection conn
        cdef Response resp
        cdef bytes head
        cdef int attempt
        cdef bint reused
        cdef int hold
        if wait == "headers":
            hold = WAIT_HEADERS
        elif wait == "first_bytes":
            hold = WAIT_FIRST_BYTES
        elif wait == "whole_body":
            hold = WAIT_WHOLE_BODY
        else:
            raise ValueError(f"wait must be 'headers', 'first_bytes' or 'whole_body', not {wait!r}")
        if self._closed:
            raise ClientClosedError("HTTP client is closed")
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        if request.method == "HEAD":
            # llhttp cannot be told that a HEAD response has no body: aiohttp serves those.
            raise ValueError("HEAD requests are not supported by the fast client")
        t = self.target(request.url)
        if t is None:
            raise ValueError(f"unsupported upstream URL for the fast client: {request.url!r}")
        body = request.body
        if body is not None and not isinstance(body, bytes):
            body = bytes(body)
        head = _build_head(request.method, t, request.headers, len(body) if body is not None else (
            0 if request.method in ("POST", "PUT", "PATCH") else -1))
        for attempt in range(2):
            conn = self._acquire(t.key)
            reused = conn is not None
            if conn is None:
                conn = await self._connect(t, connect_timeout)
            resp = Response.__new__(Response)
            resp._client = self
            resp._conn = conn
            resp._host = t.host
            resp._raw_headers = []
            resp._chunks = []
            resp._read_timeout = read_timeout
            resp._state = ST_HEADERS
            resp._hold = hold
            resp._accumulate = hold == WAIT_WHOLE_BODY
            resp._timer = self._loop.call_later(read_timeout, resp._on_timer)
            conn._start(resp, head, body)  # a dead socket fails resp at once (and cancels the timer)
            self.requests_sent += 1
            try:
                while resp._state == ST_HEADERS or (resp._state == ST_BODY and (
                        hold == WAIT_WHOLE_BODY or (hold == WAIT_FIRST_BYTES and not resp._chunks))):
                    resp._waiter = self._loop.create_future()
                    await resp._waiter
            except BaseException:
                resp.close()
                raise
            resp._hold = WAIT_HEADERS  # from here on the consumer waits, and is woken by every event
            # With "first_bytes", bytes that came before a failure are delivered first (as
            # iter_chunks() does): the failure then surfaces from the body.
            if resp._state == ST_FAILED and not (hold == WAIT_FIRST_BYTES and resp._chunks):
                if (reused and attempt == 0 and resp._err_kind == ERR_CLOSED and not resp._got_bytes):
                    # The server closed this idle connection as we sent: nothing was processed.
                    self.stale_retries += 1
                    continue
                raise resp._error(1 if resp.status else 0)  # after the headers: as read() words it
            if resp._state == ST_CLOSED:
                raise self._connection_error(f"cannot reach upstream {t.host} (closed)")
            return resp
        raise resp._error(0)

    async def close(self):
        """Close every connection; later sends fail."""
        cdef _Connection conn
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        for conn in list(self._busy_or_idle):
            conn._abort()
        self._busy_or_idle.clear()
        self._idle.clear()
