"""Process-level tuning of a worker (measured in benchmarks/README.md).

Garbage collector: a proxied request allocates hundreds of short-lived containers (a
100-chunk stream: ~300 dicts and lists), so CPython's default gen-0 threshold (700) runs a
young collection every few requests, and every older collection walks the hundreds of
thousands of long-lived objects made at import and start-up (modules, config, routes).
``gc.freeze()`` after start-up moves those out of the collector's sight, and a higher gen-0
threshold makes young collections rarer. Refcounting still frees almost everything at once;
only reference cycles wait for a collection. Measured on one pinned core: -13% CPU per
non-streaming request, -24% per 100-chunk stream, and lower p99.

``FASTGW_GC=default`` keeps CPython's settings; ``FASTGW_GC=t0,t1,t2`` sets the thresholds.
"""
from __future__ import annotations

import gc
import inspect
import logging
import os

from typing import Awaitable, Callable

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._core.request import header_value
from .observability.inflight import UNCOUNTED_PREFIXES, InFlightCount

log = logging.getLogger("fastgw")

ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]

GC_ENV = "FASTGW_GC"
GC_THRESHOLDS = (20_000, 20, 20)


def tune_gc() -> None:
    setting = (os.environ.get(GC_ENV) or "").strip().lower()
    if setting in ("default", "off", "0", "no"):
        return
    thresholds = GC_THRESHOLDS
    if setting:
        try:
            parts = tuple(int(x) for x in setting.split(","))
            if len(parts) != 3 or min(parts) < 1:
                raise ValueError
            thresholds = parts  # type: ignore[assignment]
        except ValueError:
            log.warning("%s=%r: expected 'default' or three positive integers t0,t1,t2; using %s", GC_ENV, setting,
                        ",".join(map(str, GC_THRESHOLDS)))
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)


class RequestHeaders(Headers):
    """Starlette's ``Headers`` with single-value lookups done in C (``header_value``).

    A proxied request reads five or so headers (request id, key, content length, cache
    control), most of them absent; Starlette scans its list in Python for each and raises
    ``KeyError`` for a missing one inside ``Mapping.get``."""

    def __getitem__(self, key: str) -> str:
        value = header_value(self._list, key)
        if value is None:
            raise KeyError(key)
        return value

    def get(self, key: str, default: str | None = None) -> str | None:  # type: ignore[override]
        value = header_value(self._list, key)
        return default if value is None else value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and header_value(self._list, key) is not None


class GatewayRequest(Request):
    """The request the fixed routes get: the same, with :class:`RequestHeaders`."""

    @property
    def headers(self) -> Headers:
        headers = self.__dict__.get("_fast_headers")
        if headers is None:
            headers = self.__dict__["_fast_headers"] = RequestHeaders(scope=self.scope)
        return headers


class ExactRouteDispatch:
    """Sends requests for fixed-path routes straight to their endpoint.

    Starlette runs every request through three middleware layers (server errors, the
    in-flight gauge, exception handlers), each wrapping ``send``, then tries every
    route's regex in order and runs the endpoint through two more wrappers. For
    ``POST /v1/chat/completions`` that was ~6% of a proxied request's CPU. This is
    installed as the app's middleware stack and does, for the routes in its table, what
    those layers do for them, in one frame: count the request in flight, call the
    endpoint, and turn an unexpected exception into the app's 500 response (then
    re-raise it for the server to log, as Starlette does). The endpoints handle their
    own ``GatewayError``s, and none raises ``HTTPException``. Anything not in the table
    (path parameters, other methods, route-level middleware) takes the normal stack.
    """

    def __init__(self, router: Router, fallback: ASGIApp, on_error: ErrorHandler, in_flight: InFlightCount) -> None:
        self.router = router
        self.fallback = fallback
        self.on_error = on_error
        self.in_flight = in_flight
        self.table: dict[tuple[str, str], Route] = {}
        routes = list(router.routes)
        for index, route in enumerate(routes):
            if not (type(route) is Route and not route.param_convertors and route.methods
                    and getattr(route.app, "__qualname__", "") == "request_response.<locals>.app"
                    and inspect.iscoroutinefunction(route.endpoint)):
                continue
            if route.path.startswith(UNCOUNTED_PREFIXES):
                continue  # probes and /metrics keep the normal stack (not counted in flight)
            for method in route.methods:
                probe = {"type": "http", "path": route.path, "root_path": "", "method": method}
                # Starlette takes the first full match: an earlier route matching this path wins there too.
                if (method, route.path) in self.table or any(
                        earlier.matches(dict(probe))[0] is Match.FULL for earlier in routes[:index]):
                    continue
                self.table[(method, route.path)] = route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.table.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if route is None:
            await self.fallback(scope, receive, send)
            return
        scope["router"] = self.router
        scope["route"] = route
        scope["endpoint"] = route.endpoint
        scope["path_params"] = {}
        started = False

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        request = GatewayRequest(scope, receive, tracked_send)
        self.in_flight.inc()
        try:
            response = await route.endpoint(request)
            await response(scope, receive, tracked_send)
        except Exception as exc:
            if not started:
                await (await self.on_error(request, exc))(scope, receive, send)
            raise
        finally:
            self.in_flight.dec()


def fast_routes(app: Starlette, on_error: ErrorHandler, in_flight: InFlightCount) -> None:
    """Install :class:`ExactRouteDispatch` in front of ``app``'s middleware stack."""
    app.middleware_stack = ExactRouteDispatch(app.router, app.build_middleware_stack(), on_error, in_flight)
