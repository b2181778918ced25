"""ASGI middleware keeping the in-flight requests gauge: up on arrival, down when the
response (a whole stream included) is done. Probes and ``/metrics`` are not counted."""
from __future__ import annotations

from prometheus_client import Gauge
from starlette.types import ASGIApp, Receive, Scope, Send

UNCOUNTED_PREFIXES = ("/metrics", "/health")


class InFlightMiddleware:
    def __init__(self, app: ASGIApp, gauge: Gauge) -> None:
        self.app = app
        self.gauge = gauge

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNCOUNTED_PREFIXES):
            await self.app(scope, receive, send)
            return
        self.gauge.inc()
        try:
            await self.app(scope, receive, send)
        finally:
            self.gauge.dec()
