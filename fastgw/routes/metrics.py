"""``GET /metrics``: Prometheus exposition, merged across workers in multiprocess mode.

Open like LiteLLM's unless ``litellm_settings.require_auth_for_metrics_endpoint`` is set;
labels carry no keys or prompts either way.
"""
from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..errors import GatewayError
from ..gateway import Gateway
from ..observability.multiprocess import render_latest
from ..responses import error_response


async def metrics(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    if gw.observer.settings.metrics_require_auth:
        try:
            gw.auth.authenticate(request.headers)
        except GatewayError as err:
            return error_response(err, request.headers.get("x-request-id"))
    gw.observer.observe_pending()  # requests finished a moment ago are counted
    gw.observer.refresh_gauges()
    return Response(render_latest(gw.metrics.registry), 200, media_type=CONTENT_TYPE_LATEST)


def routes() -> list[Route]:
    return [Route("/metrics", metrics, methods=["GET"]), Route("/metrics/", metrics, methods=["GET"])]
