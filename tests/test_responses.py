"""JSON responses and their headers, as the server gets them."""
from __future__ import annotations

from types import MappingProxyType

import orjson

from fastgw.errors import GatewayError
from fastgw.responses import JSONBytesResponse, error_response


def test_json_response_headers_in_order_with_length_and_type():
    response = JSONBytesResponse({"a": "é"}, 201, {"x-request-id": "r1", "x-fastgw-cost": "0.1", "x-note": "caf\u00e9"})
    assert response.status_code == 201 and orjson.loads(response.body) == {"a": "é"}
    assert response.raw_headers == [(b"content-length", b"%d" % len(response.body)), (b"x-request-id", b"r1"),
                                    (b"x-fastgw-cost", b"0.1"), (b"x-note", "caf\u00e9".encode("latin-1")),
                                    (b"content-type", b"application/json")]


def test_own_content_type_bytes_content_and_any_mapping():
    response = JSONBytesResponse(b'{"b":1}', 200, MappingProxyType({"content-type": "application/x-ndjson"}))
    assert response.body == b'{"b":1}'
    assert response.raw_headers == [(b"content-length", b"7"), (b"content-type", b"application/x-ndjson")]
    assert JSONBytesResponse({}, 204).raw_headers == [(b"content-length", b"2"), (b"content-type", b"application/json")]


def test_error_response_carries_the_request_id_and_error_headers():
    err = GatewayError(429, "slow down", "rate_limit_error", None, "rate_limit_exceeded")
    err.headers["retry-after"] = "3"
    response = error_response(err, "req-9")
    assert response.status_code == 429 and orjson.loads(response.body)["error"]["code"] == "rate_limit_exceeded"
    assert (b"retry-after", b"3") in response.raw_headers and (b"x-request-id", b"req-9") in response.raw_headers


def test_after_send_runs_once_after_the_body_and_when_sending_fails():
    import asyncio

    import pytest

    events: list[str] = []

    async def send(message: dict) -> None:
        events.append(message["type"])

    async def broken_send(message: dict) -> None:
        raise OSError("client gone")

    async def main() -> None:
        response = JSONBytesResponse({"a": 1}, 200, after_send=lambda: events.append("accounted"))
        await response({"type": "http"}, None, send)  # type: ignore[arg-type]
        assert events == ["http.response.start", "http.response.body", "accounted"]
        events.clear()
        response = JSONBytesResponse({"a": 1}, 200, after_send=lambda: events.append("accounted"))
        with pytest.raises(OSError):
            await response({"type": "http"}, None, broken_send)  # type: ignore[arg-type]
        assert events == ["accounted"]  # nothing is lost: the call is accounted for anyway

    asyncio.run(main())
