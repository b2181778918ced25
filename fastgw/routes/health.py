"""Liveness and readiness probes (LiteLLM's paths), open without a key like LiteLLM's;
``/health`` (deployment states, for operators) needs the key, as LiteLLM's does."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import GatewayError
from ..responses import JSONBytesResponse, error_response
from ..router.health import deployment_report


async def liveliness(request: Request) -> Response:
    return JSONBytesResponse("I'm alive!")


async def readiness(request: Request) -> Response:
    gw = request.app.state.gateway
    log = gw.usage_log
    governance = gw.governance.status()
    healthy = gw.started and log.healthy() and governance["healthy"]
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "db": "connected" if log.healthy() else f"error: {log.last_error}",
        "usage_log": {"queue_depth": log.queue_depth, "written": log.written, "dropped": log.dropped,
                      "retention": gw.retention.status()},
        "governance": governance,
        "models": len(gw.models.groups),
    }
    return JSONBytesResponse(body, 200 if body["status"] == "healthy" else 503)


async def deployments_health(request: Request) -> Response:
    """Each deployment's routing state: healthy / cooling down until T / half-open, last error."""
    gw = request.app.state.gateway
    try:
        gw.auth.authenticate(request.headers)
    except GatewayError as err:
        return error_response(err, request.headers.get("x-request-id"))
    return JSONBytesResponse(deployment_report(gw.router))


def routes() -> list[Route]:
    return [
        Route("/health", deployments_health, methods=["GET"]),
        Route("/health/liveliness", liveliness, methods=["GET"]),
        Route("/health/liveness", liveliness, methods=["GET"]),
        Route("/health/readiness", readiness, methods=["GET"]),
    ]
