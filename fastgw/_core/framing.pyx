# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -O3
"""Incremental decoders for the three streaming framings upstreams use.

* ``SSEDecoder``: ``text/event-stream`` (OpenAI, Azure, Anthropic, Gemini ``alt=sse``, Cohere).
* ``NDJSONDecoder``: newline-delimited JSON (Ollama).
* ``EventStreamDecoder``: AWS binary event-stream (Bedrock ``*WithResponseStream``).

All three accept socket reads of any size, including 1 byte at a time, and do O(n) work
overall: only the unfinished tail of a feed is copied into an internal buffer, and a scan
never revisits bytes already known not to hold a terminator.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.buffer cimport PyBUF_READ
from cpython.mem cimport PyMem_Free, PyMem_Realloc
from cpython.memoryview cimport PyMemoryView_FromMemory
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int8_t, int16_t, int32_t, int64_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memchr, memcmp, memcpy, memmove

# --------------------------------------------------------------------------------------------
# Growable buffer shared by the decoders (see _Buf in framing.pxd).
# --------------------------------------------------------------------------------------------

cdef int _buf_reserve(_Buf* b, Py_ssize_t extra) except -1:
    """Make room for ``extra`` more bytes, compacting consumed bytes first, then doubling."""
    cdef Py_ssize_t live = b.len - b.start
    cdef Py_ssize_t need = live + extra
    cdef Py_ssize_t cap
    cdef char* mem
    if b.len + extra <= b.cap:
        return 0
    if b.start > 0:
        # Compacting moves only the unconsumed part, and happens only when space runs out,
        # so the total work stays linear in the bytes fed.
        if live > 0:
            memmove(b.data, b.data + b.start, live)
        b.start = 0
        b.len = live
        if need <= b.cap:
            return 0
    cap = b.cap * 2 if b.cap >= 256 else 256
    while cap < need:
        cap *= 2
    mem = <char*>PyMem_Realloc(b.data, cap)
    if mem == NULL:
        raise MemoryError()
    b.data = mem
    b.cap = cap
    return 0


cdef inline int _buf_append(_Buf* b, const char* p, Py_ssize_t n) except -1:
    if n <= 0:
        return 0
    if b.len + n > b.cap:
        _buf_reserve(b, n)
    memcpy(b.data + b.len, p, n)
    b.len += n
    return 0


cdef inline void _buf_clear(_Buf* b) noexcept:
    b.start = 0
    b.len = 0


cdef inline void _buf_free(_Buf* b) noexcept:
    if b.data != NULL:
        PyMem_Free(b.data)
    b.data = NULL
    b.start = 0
    b.len = 0
    b.cap = 0


cdef inline object _as_bytes(object data):
    """Feeds are normally ``bytes``; anything else buffer-like is copied once to bytes."""
    if type(data) is bytes:
        return data
    return bytes(data)


# --------------------------------------------------------------------------------------------
# SSE
# --------------------------------------------------------------------------------------------

cdef inline Py_ssize_t _find_eol(const char* p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t* cr) noexcept:
    """Index of the next \\n or \\r at or after ``i`` (``n`` if none).

    ``cr`` caches the next \\r position for the whole feed so that streams without \\r
    (almost all of them) pay for one memchr per feed instead of one per line.
    """
    cdef const char* q
    if cr[0] < i:
        q = <const char*>memchr(p + i, 13, n - i)
        cr[0] = (q - p) if q != NULL else n
    if cr[0] == i:
        return i
    q = <const char*>memchr(p + i, 10, cr[0] - i)
    if q != NULL:
        return q - p
    return cr[0]


cdef class SSEDecoder:
    """Incremental text/event-stream parser (WHATWG rules).

    Works line by line, so only an unfinished line is ever buffered; an event's data is
    kept as the finished ``bytes`` of its first data line, which for the usual one-line
    event becomes the output object without a further copy.
    """

    def __cinit__(self):
        self._line.data = NULL
        self._line.start = 0
        self._line.len = 0
        self._line.cap = 0

    def __init__(self):
        _buf_clear(&self._line)
        self._skip_lf = False
        self._started = False
        self._in_event = False
        self._event = None
        self._data = None
        self._more = None

    def __dealloc__(self):
        _buf_free(&self._line)

    cdef int _dispatch(self, list out) except -1:
        """Blank line: emit the event if it had a data field, then start a new one."""
        cdef object data
        if self._data is not None:
            if self._more is None:
                data = self._data
            else:
                self._more.insert(0, self._data)
                data = b"\n".join(self._more)
            out.append((self._event, data))
        self._event = None
        self._data = None
        self._more = None
        self._in_event = False
        return 0

    cdef int _on_line(self, const char* s, Py_ssize_t n, list out) except -1:
        """Handle one complete line (terminator removed)."""
        cdef const char* colon
        cdef const char* v
        cdef Py_ssize_t name_len, vlen
        if not self._started:
            self._started = True
            if n >= 3 and memcmp(s, b"\xef\xbb\xbf", 3) == 0:
                s += 3
                n -= 3
        if n == 0:
            return self._dispatch(out)
        if s[0] == 58:  # ':' comment / keep-alive
            return 0
        self._in_event = True
        colon = <const char*>memchr(s, 58, n)
        if colon == NULL:
            name_len = n
            v = s + n
            vlen = 0
        else:
            name_len = colon - s
            v = colon + 1
            vlen = n - name_len - 1
            if vlen > 0 and v[0] == 32:
                v += 1
                vlen -= 1
        if name_len == 4 and memcmp(s, b"data", 4) == 0:
            if self._data is None:
                self._data = PyBytes_FromStringAndSize(v, vlen)
            elif self._more is None:
                self._more = [PyBytes_FromStringAndSize(v, vlen)]
            else:
                self._more.append(PyBytes_FromStringAndSize(v, vlen))
        elif name_len == 5 and memcmp(s, b"event", 5) == 0:
            # An empty name means the default type, reported as None like an absent one.
            self._event = PyUnicode_DecodeUTF8(v, vlen, "replace") if vlen else None
        # id, retry and unknown fields are ignored.
        return 0

    def feed(self, data):
        """Bytes in any chunking -> completed events as (event name or None, data)."""
        cdef bytes b = _as_bytes(data)
        cdef const char* p = PyBytes_AS_STRING(b)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
        cdef Py_ssize_t i = 0, t, ln
        cdef Py_ssize_t cr = -1
        cdef list out = []
        if n == 0:
            return out
        if self._skip_lf:
            self._skip_lf = False
            if p[0] == 10:
                i = 1
        while i < n:
            t = _find_eol(p, i, n, &cr)
            if t == n:
                _buf_append(&self._line, p + i, n - i)
                break
            if self._line.len > 0:
                # The line began in an earlier feed: complete it in the carry buffer.
                _buf_append(&self._line, p + i, t - i)
                ln = self._line.len
                self._line.len = 0
                self._on_line(self._line.data, ln, out)
            else:
                self._on_line(p + i, t - i, out)
            i = t
            if p[i] == 13:
                # \r\n counts once; a \r ending the feed defers that decision to the next.
                if i + 1 < n:
                    if p[i + 1] == 10:
                        i += 1
                else:
                    self._skip_lf = True
            i += 1
        return out

    def close(self):
        """At end of body. An unfinished event is dropped (WHATWG); ``pending`` tells."""
        return []

    @property
    def pending(self):
        """True if bytes of an unfinished event are buffered (a truncated stream)."""
        return self._line.len > 0 or self._in_event


# --------------------------------------------------------------------------------------------
# NDJSON
# --------------------------------------------------------------------------------------------

cdef inline bint _is_blank(const char* s, Py_ssize_t n) noexcept:
    cdef Py_ssize_t k
    cdef char c
    for k in range(n):
        c = s[k]
        if c != 32 and c != 9 and c != 13 and c != 10:
            return False
    return True


cdef class NDJSONDecoder:
    """Newline-delimited JSON lines (Ollama). Yields raw lines; JSON parsing is the caller's."""

    def __cinit__(self):
        self._line.data = NULL
        self._line.start = 0
        self._line.len = 0
        self._line.cap = 0

    def __init__(self):
        _buf_clear(&self._line)

    def __dealloc__(self):
        _buf_free(&self._line)

    cdef int _on_line(self, const char* s, Py_ssize_t n, list out) except -1:
        if n > 0 and s[n - 1] == 13:
            n -= 1
        # Whitespace-only lines carry no JSON value; treating them as blank spares the
        # caller a parse error on a stray "\r\n" or indentation.
        if not _is_blank(s, n):
            out.append(PyBytes_FromStringAndSize(s, n))
        return 0

    def feed(self, data):
        """Complete lines without terminator (\\n or \\r\\n); blank lines skipped."""
        cdef bytes b = _as_bytes(data)
        cdef const char* p = PyBytes_AS_STRING(b)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
        cdef Py_ssize_t i = 0, t, ln
        cdef const char* q
        cdef list out = []
        while i < n:
            q = <const char*>memchr(p + i, 10, n - i)
            if q == NULL:
                _buf_append(&self._line, p + i, n - i)
                break
            t = q - p
            if self._line.len > 0:
                _buf_append(&self._line, p + i, t - i)
                ln = self._line.len
                self._line.len = 0
                self._on_line(self._line.data, ln, out)
            else:
                self._on_line(p + i, t - i, out)
            i = t + 1
        return out

    def close(self):
        """The last line if it had no trailing newline (non-blank), else []."""
        cdef list out = []
        cdef Py_ssize_t ln = self._line.len
        if ln > 0:
            self._line.len = 0
            self._on_line(self._line.data, ln, out)
        return out

    @property
    def pending(self):
        """True if part of a line is buffered (a stream cut mid-line, before ``close``)."""
        return self._line.len > 0


# --------------------------------------------------------------------------------------------
# AWS event-stream
# --------------------------------------------------------------------------------------------

class EventStreamError(ValueError):
    """A corrupt or impossible AWS event-stream frame; the stream cannot be trusted after it."""


# CRC-32 (IEEE 802.3 / zlib, reflected polynomial 0xEDB88320). Most frames are small
# (100-500 bytes): there an in-module slice-by-8 table wins, because calling zlib.crc32
# through Python costs more than the whole checksum. zlib's own loop is ~2.5x faster per
# byte, so messages from _ZLIB_MIN bytes up go to zlib.crc32 on a zero-copy memoryview
# (measured in benchmarks/bench_framing.py; crossover near 700 bytes).
import zlib as _zlib

cdef object _zlib_crc32 = _zlib.crc32
cdef uint32_t _CRC[8][256]


cdef void _crc_init() noexcept:
    cdef uint32_t c
    cdef int i, k
    for i in range(256):
        c = <uint32_t>i
        for k in range(8):
            c = (c >> 1) ^ (0xEDB88320 if (c & 1) else 0)
        _CRC[0][i] = c
    for i in range(256):
        c = _CRC[0][i]
        for k in range(1, 8):
            c = (c >> 8) ^ _CRC[0][c & 0xFF]
            _CRC[k][i] = c


_crc_init()


cdef inline uint32_t _crc32_update(uint32_t crc, const unsigned char* p, Py_ssize_t n) noexcept nogil:
    """Continue a CRC-32: ``crc`` is a previous result (0 to start), as zlib.crc32(data, crc)."""
    cdef uint32_t lo, hi
    crc = ~crc
    while n >= 8:
        lo = crc ^ (<uint32_t>p[0] | (<uint32_t>p[1] << 8) | (<uint32_t>p[2] << 16) | (<uint32_t>p[3] << 24))
        hi = <uint32_t>p[4] | (<uint32_t>p[5] << 8) | (<uint32_t>p[6] << 16) | (<uint32_t>p[7] << 24)
        crc = (_CRC[7][lo & 0xFF] ^ _CRC[6][(lo >> 8) & 0xFF] ^ _CRC[5][(lo >> 16) & 0xFF]
               ^ _CRC[4][lo >> 24] ^ _CRC[3][hi & 0xFF] ^ _CRC[2][(hi >> 8) & 0xFF]
               ^ _CRC[1][(hi >> 16) & 0xFF] ^ _CRC[0][hi >> 24])
        p += 8
        n -= 8
    while n > 0:
        crc = (crc >> 8) ^ _CRC[0][(crc ^ p[0]) & 0xFF]
        p += 1
        n -= 1
    return ~crc


def _crc32(data, unsigned int value=0):
    """CRC-32 of ``data`` (same result as zlib.crc32). Exposed for tests and the benchmark."""
    cdef bytes b = _as_bytes(data)
    return _crc32_update(value, <const unsigned char*>PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))


cdef inline uint32_t _be32(const unsigned char* p) noexcept:
    return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | <uint32_t>p[3]


cdef inline uint16_t _be16(const unsigned char* p) noexcept:
    return <uint16_t>((<uint16_t>p[0] << 8) | <uint16_t>p[1])


cdef inline int64_t _be64(const unsigned char* p) noexcept:
    return <int64_t>((<uint64_t>_be32(p) << 32) | <uint64_t>_be32(p + 4))


# Limits: 16 MiB per message (a corrupt length must not make us buffer gigabytes) and
# botocore's 128 KiB for the header block.
cdef enum:
    _MAX_MESSAGE = 16 * 1024 * 1024
    _MAX_HEADERS = 128 * 1024
    _PRELUDE = 12
    _MIN_MESSAGE = 16
    _ZLIB_MIN = 1024


cdef class EventStreamMessage:
    """One decoded event-stream message: ``headers`` (name -> typed value) and raw ``payload``."""

    def __init__(self, dict headers, bytes payload):
        self.headers = headers
        self.payload = payload

    def __repr__(self):
        return f"EventStreamMessage(headers={self.headers!r}, payload={self.payload!r})"

    def __eq__(self, other):
        if not isinstance(other, EventStreamMessage):
            return NotImplemented
        return self.headers == (<EventStreamMessage>other).headers and self.payload == (<EventStreamMessage>other).payload

    __hash__ = None


# Header names and the common string values repeat in every message; returning shared str
# objects for them skips a UTF-8 decode and an allocation per header.
cdef tuple _KNOWN = tuple(
    (text.encode(), text) for text in (
        ":event-type", ":content-type", ":message-type", "event", "application/json",
        ":exception-type", "exception", ":error-code", ":error-message", "error",
        "chunk", "messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop",
        "messageStop", "metadata",
    )
)


cdef object _header_str(const unsigned char* p, Py_ssize_t n, bint as_text):
    cdef tuple pair
    cdef bytes known
    if not as_text:
        return PyBytes_FromStringAndSize(<const char*>p, n)
    for pair in _KNOWN:
        known = <bytes>pair[0]
        if PyBytes_GET_SIZE(known) == n and memcmp(PyBytes_AS_STRING(known), p, n) == 0:
            return pair[1]
    try:
        return PyUnicode_DecodeUTF8(<const char*>p, n, NULL)
    except UnicodeDecodeError as exc:
        raise EventStreamError(f"header text is not valid UTF-8: {exc}") from None


cdef dict _parse_headers(const unsigned char* p, Py_ssize_t n):
    """Decode the header block; any length running past the block is an error."""
    cdef dict headers = {}
    cdef Py_ssize_t i = 0, nlen, vlen
    cdef unsigned char vtype
    cdef object name, value
    while i < n:
        nlen = p[i]
        i += 1
        if nlen == 0 or i + nlen + 1 > n:
            raise EventStreamError("header name overruns the header block")
        name = _header_str(p + i, nlen, True)
        i += nlen
        vtype = p[i]
        i += 1
        if vtype == 0:
            value = True
        elif vtype == 1:
            value = False
        elif vtype == 2:
            if i + 1 > n:
                raise EventStreamError("header value overruns the header block")
            value = <int8_t>p[i]
            i += 1
        elif vtype == 3:
            if i + 2 > n:
                raise EventStreamError("header value overruns the header block")
            value = <int16_t>_be16(p + i)
            i += 2
        elif vtype == 4:
            if i + 4 > n:
                raise EventStreamError("header value overruns the header block")
            value = <int32_t>_be32(p + i)
            i += 4
        elif vtype == 5 or vtype == 8:
            if i + 8 > n:
                raise EventStreamError("header value overruns the header block")
            value = _be64(p + i)
            i += 8
        elif vtype == 6 or vtype == 7:
            if i + 2 > n:
                raise EventStreamError("header value overruns the header block")
            vlen = _be16(p + i)
            i += 2
            if i + vlen > n:
                raise EventStreamError("header value overruns the header block")
            value = _header_str(p + i, vlen, vtype == 7)
            i += vlen
        elif vtype == 9:
            if i + 16 > n:
                raise EventStreamError("header value overruns the header block")
            value = PyBytes_FromStringAndSize(<const char*>(p + i), 16)
            i += 16
        else:
            raise EventStreamError(f"unknown header value type {vtype}")
        headers[name] = value
    return headers


cdef class EventStreamDecoder:
    """AWS binary event-stream (application/vnd.amazon.eventstream) decoder.

    Both CRCs are verified before anything from a frame is returned, and the prelude CRC
    is checked as soon as its 12 bytes arrive, so a corrupt length is reported instead of
    waiting for up to 16 MiB that will never come. After an error every further ``feed``
    raises again: once framing is lost, later bytes cannot be trusted.
    """

    def __cinit__(self):
        self._buf.data = NULL
        self._buf.start = 0
        self._buf.len = 0
        self._buf.cap = 0

    def __init__(self):
        _buf_clear(&self._buf)
        self._error = None

    def __dealloc__(self):
        _buf_free(&self._buf)

    cdef Py_ssize_t _parse(self, const unsigned char* p, Py_ssize_t n, list out) except -1:
        """Decode whole messages from ``p[:n]``; returns the number of bytes consumed."""
        cdef Py_ssize_t pos = 0
        cdef const unsigned char* q
        cdef uint32_t total, hlen, crc
        cdef EventStreamMessage msg
        while n - pos >= _PRELUDE:
            q = p + pos
            total = _be32(q)
            hlen = _be32(q + 4)
            crc = _crc32_update(0, q, 8)
            if crc != _be32(q + 8):
                self._fail(out, "prelude CRC mismatch")
            if total < _MIN_MESSAGE or total > _MAX_MESSAGE:
                self._fail(out, f"impossible message length {total}")
            if hlen > total - _MIN_MESSAGE or hlen > _MAX_HEADERS:
                self._fail(out, f"impossible headers length {hlen} in a {total}-byte message")
            if n - pos < total:
                break
            # The message CRC covers everything before it, prelude CRC included; continue
            # from the prelude's CRC rather than re-reading those 8 bytes.
            if total >= _ZLIB_MIN:
                crc = <uint32_t>_zlib_crc32(PyMemoryView_FromMemory(<char*>(q + 8), total - 12, PyBUF_READ), crc)
            else:
                crc = _crc32_update(crc, q + 8, total - 12)
            if crc != _be32(q + total - 4):
                self._fail(out, "message CRC mismatch")
            msg = EventStreamMessage.__new__(EventStreamMessage)
            try:
                msg.headers = _parse_headers(q + _PRELUDE, hlen)
            except EventStreamError as exc:
                self._fail(out, str(exc))
            msg.payload = PyBytes_FromStringAndSize(<const char*>(q + _PRELUDE + hlen), total - _MIN_MESSAGE - hlen)
            out.append(msg)
            pos += total
        return pos

    cdef int _fail(self, list out, str message) except -1:
        exc = EventStreamError(message)
        # Messages already verified earlier in the same feed are not garbage; keep them
        # reachable for a caller that wants to forward them before failing the stream.
        exc.messages = out
        self._error = message
        raise exc

    def feed(self, data):
        """Bytes in any chunking -> list of complete, CRC-verified EventStreamMessage."""
        cdef bytes b = _as_bytes(data)
        cdef const unsigned char* p = <const unsigned char*>PyBytes_AS_STRING(b)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(b)
        cdef Py_ssize_t used
        cdef list out = []
        if self._error is not None:
            raise EventStreamError(f"stream already failed: {self._error}")
        if n == 0:
            return out
        if self._buf.len == self._buf.start:
            # Nothing carried over: decode straight from the caller's bytes and copy only
            # the unfinished tail.
            _buf_clear(&self._buf)
            used = self._parse(p, n, out)
            _buf_append(&self._buf, <const char*>(p + used), n - used)
        else:
            _buf_append(&self._buf, <const char*>p, n)
            used = self._parse(<const unsigned char*>(self._buf.data + self._buf.start),
                               self._buf.len - self._buf.start, out)
            self._buf.start += used
            if self._buf.start == self._buf.len:
                _buf_clear(&self._buf)
        return out

    @property
    def pending(self):
        """True if bytes of an incomplete message are buffered (a truncated stream)."""
        return self._buf.len > self._buf.start
