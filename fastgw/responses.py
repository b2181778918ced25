"""Response helpers shared by the routes: JSON bodies and OpenAI-shaped errors."""
from __future__ import annotations

from typing import Callable, Mapping

import orjson
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ._core.server import latin1_headers
from .errors import GatewayError


class JSONBytesResponse(Response):
    """A JSON response whose raw headers are built in one pass.

    Starlette's ``Response.__init__`` re-scans the header list for content-length and
    content-type and lower-cases every name; on the proxied path that was ~2% of a
    request. Header names here are lower-case already (set by the gateway, or relayed
    from an upstream, which httptools lower-cases), and the server lower-cases any that
    are not; a ``content-type`` given in another case would be sent twice.

    ``after_send`` runs once the body is written, or the sending failed or was cancelled:
    the request's accounting, off the client's wait (``pipeline.account``).
    """

    media_type = "application/json"

    def __init__(self, content: object, status_code: int = 200, headers: Mapping[str, str] | None = None,
                 after_send: Callable[[], None] | None = None) -> None:
        body = content if isinstance(content, bytes) else orjson.dumps(content)
        self.status_code = status_code
        self.body = body
        self.background = None
        self.after_send = after_send
        raw = [(b"content-length", b"%d" % len(body))]
        if headers:
            raw += latin1_headers(headers if type(headers) is dict else dict(headers))
            if "content-type" not in headers:
                raw.append((b"content-type", b"application/json"))
        else:
            raw.append((b"content-type", b"application/json"))
        self.raw_headers = raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            if self.after_send is not None:
                self.after_send()


def error_response(err: GatewayError, request_id: str | None = None) -> Response:
    headers = dict(err.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return JSONBytesResponse(err.to_json(), err.status, headers)
