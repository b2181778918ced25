"""Type stubs for the compiled HTTP/1.1 server protocol (fastgw/_core/server.pyx)."""
import asyncio
from typing import Any

class HttpProtocol(asyncio.Protocol):
    """uvicorn's ``http=`` protocol class: one instance per client connection.

    Built by uvicorn's server with its config, shared server state and lifespan state;
    serves the ASGI app in ``config.loaded_app``. ``shutdown()`` is uvicorn's graceful stop.
    """

    def __init__(self, config: Any, server_state: Any, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None: ...
    def shutdown(self) -> None: ...

BUSY_POLL_ENV: str  # microseconds of busy polling after activity (``fastgw serve --busy-poll-us``)
BUSY_POLL_DEFAULT_US: float
BUSY_POLL_MAX_US: float

def latin1_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI raw headers (latin-1) from a dict of str, in order; names as given."""
