"""Build the Starlette application for one worker process."""
from __future__ import annotations

import contextlib
import logging
import os
from typing import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from .config import LoadedConfig, load_config
from .errors import GatewayError
from .gateway import Gateway
from .responses import error_response
from .tuning import fast_routes, tune_gc
from .observability.inflight import InFlightMiddleware
from .routes import admin, health, messages, metrics, openai, spend, utils

log = logging.getLogger("fastgw")

CONFIG_ENV = "FASTGW_CONFIG"  # how `fastgw serve` hands the config path to worker processes


def create_app(loaded: LoadedConfig | None = None) -> Starlette:
    if loaded is None:
        loaded = load_config(os.environ.get(CONFIG_ENV) or None)
    gateway = Gateway.from_config(loaded)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await gateway.start()
        tune_gc()  # perf: freeze start-up objects, rarer young collections (fastgw/tuning.py)
        try:
            yield
        finally:
            await gateway.stop()

    app = Starlette(
        routes=[*openai.routes(), *messages.routes(), *health.routes(), *metrics.routes(),
                *admin.routes(), *spend.routes(), *utils.routes()],
        middleware=[Middleware(InFlightMiddleware, gauge=gateway.metrics.in_flight)],
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    app.state.gateway = gateway
    fast_routes(app, _internal_error, gateway.metrics.in_flight)  # perf: fixed-path routes skip layers (tuning.py)
    return app


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        err = GatewayError(404, f"Unknown path {request.url.path}", "invalid_request_error", None, "unknown_url")
    elif exc.status_code == 405:
        err = GatewayError(405, f"Method {request.method} is not allowed on {request.url.path}",
                           "invalid_request_error", None, "method_not_allowed")
    else:
        err = GatewayError(exc.status_code, str(exc.detail), "invalid_request_error", None, None)
    return error_response(err, request.headers.get("x-request-id"))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__, exc_info=exc)
    err = GatewayError(500, "internal gateway error", "api_error", None, "internal_error")
    return error_response(err, request.headers.get("x-request-id"))
