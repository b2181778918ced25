"""The fixed-route fast path does what Starlette's middleware would, in one frame."""
from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client import CollectorRegistry, Gauge
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fastgw.tuning import ExactRouteDispatch, RequestHeaders, fast_routes


def build():
    gauge = Gauge("in_flight", "test", registry=CollectorRegistry())
    seen: dict[str, float] = {}

    async def ok(request: Request) -> Response:
        seen["during"] = gauge._value.get()
        return JSONResponse({"ok": True, "app": request.app is app})

    async def boom(request: Request) -> Response:
        raise RuntimeError("secret detail")

    class BreaksAfterStart(Response):
        async def __call__(self, scope, receive, send):
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise RuntimeError("after start")

    async def late(request: Request) -> Response:
        return BreaksAfterStart()

    async def item(request: Request) -> Response:
        return JSONResponse({"item": request.path_params["name"]})

    async def on_error(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": {"message": "internal gateway error", "type": "api_error", "param": None,
                                       "code": "internal_error"}}, 500)

    app = Starlette(routes=[Route("/v1/ok", ok, methods=["POST"]), Route("/v1/boom", boom, methods=["POST"]),
                           Route("/v1/late", late, methods=["POST"]),
                           Route("/v1/items/{name}", item, methods=["GET"])])
    fast_routes(app, on_error, gauge)
    return app, gauge, seen


def call(app, method: str, path: str) -> httpx.Response:
    async def go():
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.request(method, path)
    return asyncio.run(go())


def test_fixed_routes_are_in_the_table_and_others_are_not():
    app, _, _ = build()
    dispatch = app.middleware_stack
    assert isinstance(dispatch, ExactRouteDispatch)
    assert set(dispatch.table) == {("POST", "/v1/ok"), ("POST", "/v1/boom"), ("POST", "/v1/late")}


def test_endpoint_runs_with_the_app_in_scope_and_is_counted_in_flight():
    app, gauge, seen = build()
    r = call(app, "POST", "/v1/ok")
    assert r.status_code == 200 and r.json() == {"ok": True, "app": True}
    assert seen["during"] == 1 and gauge._value.get() == 0


def test_an_unexpected_exception_becomes_the_apps_500_and_the_gauge_drops():
    app, gauge, _ = build()
    r = call(app, "POST", "/v1/boom")
    assert r.status_code == 500
    assert r.json()["error"]["code"] == "internal_error" and "secret" not in r.text
    assert gauge._value.get() == 0


def test_no_second_response_after_the_first_started():
    app, gauge, _ = build()
    r = call(app, "POST", "/v1/late")
    assert r.status_code == 200 and r.content == b""
    assert gauge._value.get() == 0


def test_other_routes_take_the_normal_stack():
    app, _, _ = build()
    assert call(app, "GET", "/v1/items/abc").json() == {"item": "abc"}
    assert call(app, "GET", "/v1/ok").status_code == 405
    assert call(app, "POST", "/nowhere").status_code == 404


def test_request_headers_answer_as_starlettes():
    """Same answers as Starlette's Headers: any case asked, first of repeated names, absent
    names, latin-1 values, an empty value, bytes-like raw values."""
    raw = [(b"host", b"t"), (b"authorization", b"Bearer sk-1"), (b"x-dup", b"first"), (b"x-dup", b"second"),
           (b"x-latin", "caf\u00e9".encode("latin-1")), (b"x-empty", b""), (b"content-length", b"12")]
    fast, slow = RequestHeaders(scope={"headers": raw}), Headers(scope={"headers": list(raw)})
    for name in ("authorization", "Authorization", "AUTHORIZATION", "x-dup", "x-latin", "x-empty", "content-length",
                 "x-request-id", "cache-control", "", "hos", "hostt"):
        assert fast.get(name) == slow.get(name), name
        assert fast.get(name, "dflt") == slow.get(name, "dflt"), name
        assert (name in fast) == (name in slow), name
        if name in slow:
            assert fast[name] == slow[name]
        else:
            with pytest.raises(KeyError):
                fast[name]
    assert 3 not in fast and fast.getlist("x-dup") == ["first", "second"] and dict(fast.items()) == dict(slow.items())
    assert RequestHeaders(scope={"headers": [(b"x-b", bytearray(b"v"))]}).get("x-b") == "v"


def test_fixed_routes_get_the_fast_headers():
    async def show(request: Request) -> Response:
        return JSONResponse({"type": type(request.headers).__name__, "same": request.headers is request.headers,
                             "key": request.headers.get("x-key"), "missing": request.headers.get("x-none", "-")})

    app = Starlette(routes=[Route("/h", show, methods=["GET"])])
    fast_routes(app, lambda request, exc: None, Gauge("in_flight_h", "test", registry=CollectorRegistry()))

    async def go() -> dict:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return (await client.get("/h", headers={"X-Key": "abc"})).json()

    assert asyncio.run(go()) == {"type": RequestHeaders.__name__, "same": True, "key": "abc", "missing": "-"}
