"""The fixed-route fast path does what Starlette's middleware would, in one frame."""
from __future__ import annotations

import asyncio

import httpx
from prometheus_client import CollectorRegistry, Gauge
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from fastgw.tuning import ExactRouteDispatch, fast_routes


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
