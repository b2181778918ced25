"""Reading a request body: ASGI messages of any size and number, limits, disconnects, bad JSON."""
from __future__ import annotations

import pytest
from starlette.requests import Request

from fastgw.errors import GatewayError
from fastgw.validation import read_json


def request(messages: list[dict], headers: list[tuple[bytes, bytes]] | None = None) -> Request:
    queue = list(messages)

    async def receive() -> dict:
        assert queue, "read past the last message"
        return queue.pop(0)

    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers or []}, receive)


def body(*parts: bytes, last_empty: bool = False) -> list[dict]:
    messages = [{"type": "http.request", "body": part, "more_body": True} for part in parts]
    if last_empty:
        messages.append({"type": "http.request", "body": b"", "more_body": False})
    else:
        messages[-1]["more_body"] = False
    return messages


async def test_a_body_in_one_or_many_messages():
    assert await read_json(request(body(b'{"a": 1}')), 100) == {"a": 1}
    assert await read_json(request(body(b'{"a"', b": ", b"[1, 2]}")), 100) == {"a": [1, 2]}
    assert await read_json(request(body(b'{"a"', b": 2}", last_empty=True)), 100) == {"a": 2}
    assert await read_json(request([{"type": "http.request", "body": b'{"b": 3}'}]), 100) == {"b": 3}
    assert await read_json(request(body(bytearray(b'{"c": 4}'))), 100) == {"c": 4}  # bytes-like, as Starlette


async def test_limits_with_and_without_a_declared_length():
    with pytest.raises(GatewayError) as info:
        await read_json(request(body(b"{}"), [(b"content-length", b"101")]), 100)
    assert (info.value.status, info.value.code) == (413, "request_too_large")
    with pytest.raises(GatewayError) as info:  # chunked: counted as it arrives, not read to the end
        await read_json(request(body(b"x" * 60, b"x" * 60, b"never read")[:2]), 100)
    assert (info.value.status, info.value.code) == (413, "request_too_large")
    assert await read_json(request(body(b'{"x": "' + b"y" * 91 + b'"}')), 100) == {"x": "y" * 91}  # exactly 100
    with pytest.raises(GatewayError) as info:
        await read_json(request(body(b"{}"), [(b"content-length", b"ten")]), 100)
    assert (info.value.status, info.value.code) == (400, "invalid_request")


async def test_empty_and_invalid_bodies():
    for parts in ((b"",), (b"  \n",), (b"{not json",), (b"[1]",)):
        with pytest.raises(GatewayError) as info:
            await read_json(request(body(*parts)), 100)
        assert (info.value.status, info.value.code) == (400, "invalid_json")


async def test_a_client_that_goes_away_mid_body():
    with pytest.raises(GatewayError) as info:
        await read_json(request([{"type": "http.request", "body": b'{"a"', "more_body": True},
                                 {"type": "http.disconnect"}]), 100)
    assert (info.value.status, info.value.code) == (499, "client_disconnected")
