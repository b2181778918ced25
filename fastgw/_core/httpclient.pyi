"""Type stubs for the compiled upstream HTTP/1.1 client (fastgw/_core/httpclient.pyx)."""
from typing import Any, AsyncIterator, Callable, Literal, Protocol

class _Request(Protocol):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None

class ClientClosedError(RuntimeError): ...

class Headers(dict[str, str]):
    """Lowercase names; ``[]``, ``get`` and ``in`` are case-insensitive; repeats joined by ", "."""

    def getall(self, key: str) -> list[str]: ...

class Response:
    status: int
    @property
    def headers(self) -> Headers: ...
    @property
    def complete(self) -> bool:
        """True once the whole body has arrived."""
    async def read(self) -> bytes:
        """The whole body (gzip/deflate decoded)."""
    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive: each item is everything received since the previous one."""
    def close(self) -> None:
        """Release the connection; aborts it if the body was not fully read."""

class HTTPClient:
    """Pooled keep-alive HTTP/1.1 client (http and https) implementing fastgw's Transport."""

    connections_opened: int
    requests_sent: int
    stale_retries: int

    def __init__(
        self,
        *,
        timeout_error: Callable[[str], BaseException] | None = ...,
        connection_error: Callable[[str], BaseException] | None = ...,
        ssl_context: Any = ...,
        keepalive_timeout: float = ...,
        max_idle_per_host: int = ...,
        dns_ttl: float = ...,
    ) -> None: ...
    def target(self, url: str) -> object | None:
        """The parsed target for ``url``, or None if this client cannot serve it."""
    def supports(self, url: str) -> bool: ...
    async def send(self, request: _Request, *, connect_timeout: float = ..., read_timeout: float = ...,
                   wait: Literal["headers", "first_bytes", "whole_body"] = ...) -> Response:
        """Send and return once the response headers arrived (``wait``: and the first body
        bytes, or the whole body, so the first read does not wait again). Raises ``timeout_error(msg)``
        (connect or read timeout) or ``connection_error(msg)`` (refused, reset, TLS failure,
        invalid response); ``ValueError`` for a header value with CR/LF."""
    @property
    def idle_connections(self) -> int: ...
    @property
    def open_connections(self) -> int: ...
    async def close(self) -> None: ...
