"""Type stubs for the compiled stream framing decoders (fastgw/_core/framing.pyx)."""

class SSEDecoder:
    """Incremental text/event-stream parser (WHATWG rules)."""

    def __init__(self) -> None: ...
    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        """Bytes in any chunking -> completed events as (event name or None, data).

        Data lines of one event are joined with b"\\n"; events without a data field are
        skipped; comments, id and retry are ignored; \\n, \\r\\n and \\r all end a line.
        An empty ``event:`` value is reported as None, like an absent one.
        """
    def close(self) -> list[tuple[str | None, bytes]]:
        """At end of body. Returns []; check ``pending`` for a truncated stream."""
    @property
    def pending(self) -> bool:
        """True if bytes of an unfinished event are buffered (a truncated stream)."""

class NDJSONDecoder:
    def __init__(self) -> None: ...
    def feed(self, data: bytes) -> list[bytes]:
        """Complete lines without terminator (\\n or \\r\\n); blank lines skipped."""
    def close(self) -> list[bytes]:
        """The last line if it had no trailing newline (non-blank), else []."""
    @property
    def pending(self) -> bool:
        """True if part of a line is buffered."""

class EventStreamError(ValueError):
    """Corrupt or impossible event-stream framing.

    ``messages`` holds the messages verified earlier in the same ``feed`` call.
    """

    messages: list[EventStreamMessage]

class EventStreamMessage:
    headers: dict[str, object]
    payload: bytes
    def __init__(self, headers: dict[str, object], payload: bytes) -> None: ...

class EventStreamDecoder:
    """AWS binary event-stream (application/vnd.amazon.eventstream) decoder; CRCs verified."""

    def __init__(self) -> None: ...
    def feed(self, data: bytes) -> list[EventStreamMessage]:
        """Bytes in any chunking -> complete messages; raises EventStreamError on corruption."""
    @property
    def pending(self) -> bool:
        """True if bytes of an incomplete message are buffered (a truncated stream)."""

def _crc32(data: bytes, value: int = 0) -> int:
    """CRC-32 (zlib-compatible); exposed for tests and benchmarks."""
