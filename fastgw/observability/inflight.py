"""ASGI middleware keeping the in-flight requests gauge: up on arrival, down when the
response (a whole stream included) is done. Probes and ``/metrics`` are not counted."""
from __future__ import annotations

from typing import Protocol

from starlette.types import ASGIApp, Receive, Scope, Send

UNCOUNTED_PREFIXES = ("/metrics", "/health")


class InFlightCount(Protocol):
    """The in-flight gauge as the request path sees it: ``InFlight``, or the prometheus
    ``Gauge`` itself with several workers."""

    def inc(self) -> None: ...

    def dec(self) -> None: ...


class InFlight:
    """Requests being served now, for one worker: a count the gauge reads when collected
    (``Gauge.set_function``). prometheus-client's ``inc``/``dec`` each take a lock, twice per
    request; with several workers the gauge itself is used, since the other workers' scrapes
    read it from its file."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0

    def inc(self) -> None:
        self.value += 1

    def dec(self) -> None:
        self.value -= 1

    def current(self) -> float:
        return float(self.value)


class InFlightMiddleware:
    def __init__(self, app: ASGIApp, gauge: InFlightCount) -> None:
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
