"""Response helpers shared by the routes: JSON bodies and OpenAI-shaped errors."""
from __future__ import annotations

from typing import Mapping

import orjson
from starlette.responses import Response

from .errors import GatewayError


class JSONBytesResponse(Response):
    media_type = "application/json"

    def __init__(self, content: object, status_code: int = 200, headers: Mapping[str, str] | None = None) -> None:
        body = content if isinstance(content, bytes) else orjson.dumps(content)
        super().__init__(body, status_code, dict(headers) if headers else None)


def error_response(err: GatewayError, request_id: str | None = None) -> Response:
    headers = dict(err.headers)
    if request_id:
        headers["x-request-id"] = request_id
    return JSONBytesResponse(err.to_json(), err.status, headers)
