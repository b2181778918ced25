"""Liveness and readiness probes (LiteLLM's paths), open without a key like LiteLLM's."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..responses import JSONBytesResponse


async def liveliness(request: Request) -> Response:
    return JSONBytesResponse("I'm alive!")


async def readiness(request: Request) -> Response:
    gw = request.app.state.gateway
    log = gw.usage_log
    body = {
        "status": "healthy" if gw.started and log.healthy() else "unhealthy",
        "db": "connected" if log.healthy() else f"error: {log.last_error}",
        "usage_log": {"queue_depth": log.queue_depth, "written": log.written, "dropped": log.dropped},
        "models": len(gw.models.groups),
    }
    return JSONBytesResponse(body, 200 if body["status"] == "healthy" else 503)


def routes() -> list[Route]:
    return [
        Route("/health/liveliness", liveliness, methods=["GET"]),
        Route("/health/liveness", liveliness, methods=["GET"]),
        Route("/health/readiness", readiness, methods=["GET"]),
    ]
