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

from starlette.requests import Request
from starlette.routing import Match, Route

log = logging.getLogger("fastgw")

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


class ExactRouteDispatch:
    """Sends requests for fixed-path routes straight to their endpoint.

    Starlette's router tries every route's regex in order and then runs the endpoint
    through ``request_response`` and a second exception-handling wrapper; the app-level
    ``ExceptionMiddleware`` (which stays in front of this) already gives the same handling.
    For ``POST /v1/chat/completions`` that is ~4% of a proxied request's CPU. Anything not
    in the table (path parameters, other methods, route-level middleware) takes the normal
    route. Installed as the router's ``middleware_stack``, so app middleware is unchanged.
    """

    def __init__(self, router, fallback) -> None:  # noqa: ANN001 - starlette Router / ASGI app
        self.router = router
        self.fallback = fallback
        self.table: dict[tuple[str, str], Route] = {}
        routes = list(router.routes)
        for index, route in enumerate(routes):
            if not (type(route) is Route and not route.param_convertors and route.methods
                    and getattr(route.app, "__qualname__", "") == "request_response.<locals>.app"
                    and inspect.iscoroutinefunction(route.endpoint)):
                continue
            for method in route.methods:
                probe = {"type": "http", "path": route.path, "root_path": "", "method": method}
                # Starlette takes the first full match: an earlier route matching this path wins there too.
                if (method, route.path) in self.table or any(
                        earlier.matches(dict(probe))[0] is Match.FULL for earlier in routes[:index]):
                    continue
                self.table[(method, route.path)] = route

    async def __call__(self, scope, receive, send) -> None:  # noqa: ANN001 - ASGI
        if scope["type"] == "http":
            route = self.table.get((scope["method"], scope["path"]))
            if route is not None:
                scope["router"] = self.router
                scope["route"] = route
                scope["endpoint"] = route.endpoint
                scope["path_params"] = {}
                response = await route.endpoint(Request(scope, receive, send))
                await response(scope, receive, send)
                return
        await self.fallback(scope, receive, send)


def fast_routes(app) -> None:  # noqa: ANN001 - starlette app
    """Install :class:`ExactRouteDispatch` in front of ``app``'s router."""
    router = app.router
    router.middleware_stack = ExactRouteDispatch(router, router.middleware_stack)
