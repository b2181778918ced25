"""OpenAI-compatible endpoints: thin handlers over ``fastgw.pipeline``."""
from __future__ import annotations

import logging
from functools import partial
from typing import Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import pipeline, validation
from ..auth import Principal
from ..cache import serve as response_cache
from ..errors import GatewayError
from ..gateway import Gateway
from ..pipeline import Call
from ..relay import OpenAIChunkEncoder, SSERelayResponse
from ..responses import JSONBytesResponse, error_response

log = logging.getLogger("fastgw.routes")

Validator = Callable[[dict], validation.RequestInfo]


async def _serve(request: Request, endpoint: str, validate: Validator) -> Response:
    gw: Gateway = request.app.state.gateway
    request_id = pipeline.new_request_id(request.headers.get("x-request-id"))
    call: Call | None = None
    try:
        principal = gw.auth.authenticate(request.headers)
        body = await validation.read_json(request, gw.max_body_bytes)
        info = validate(body)
        model = info.model
        gw.models.group(model)
        stream = info.stream
        call = Call(endpoint=endpoint, body=body, model_group=model, principal=principal, request_id=request_id,
                    stream=stream, include_usage=info.include_usage, request_info=info)
        gw.governance.admit(call)  # governance: model access, budget reservation, rate limits (or raise)
        cache_plan = response_cache.begin(gw, call, request.headers)  # strips body["cache"]
        cached = await response_cache.serve_hit(gw, call, cache_plan)
        if cached is not None:
            return cached
        if stream:
            opened = await pipeline.open_stream(gw, call)
            priced = gw.governance.for_stream(call)  # governance: x-fastgw-unpriced, usage.cost
            encoder = response_cache.capture(gw, call, cache_plan, OpenAIChunkEncoder(model, call.include_usage, priced))
            return SSERelayResponse(gw, call, opened, encoder)  # type: ignore[return-value]
        result = await pipeline.complete(gw, call)
        result["model"] = model
        await response_cache.keep(gw, call, cache_plan, result)
        pipeline.close_record(gw, call, 200)
        headers = {"x-request-id": request_id, **call.response_headers}
        return JSONBytesResponse(result, 200, headers, after_send=partial(pipeline.account, gw, call))
    except GatewayError as err:
        pipeline.account_failure(gw, endpoint, request_id, call, err)
        return error_response(err, request_id)
    except BaseException:
        gw.governance.release(call)  # governance: a crash or cancellation must not leak a reservation
        raise


async def chat_completions(request: Request) -> Response:
    return await _serve(request, "chat.completions", validation.validate_chat)


async def completions(request: Request) -> Response:
    return await _serve(request, "completions", validation.validate_completions)


async def embeddings(request: Request) -> Response:
    return await _serve(request, "embeddings", validation.validate_embeddings)


def _visible(principal: Principal, model: str) -> bool:
    """A virtual key sees only the models its key, team and user allow."""
    identity = principal.identity
    return identity is None or all(entry.allows_model(model) for _, _, entry in identity.levels())


async def list_models(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    request_id = pipeline.new_request_id(request.headers.get("x-request-id"))
    try:
        principal = gw.auth.authenticate(request.headers)
    except GatewayError as err:
        return error_response(err, request_id)
    body = gw.models.list_models([name for name in gw.models.groups if _visible(principal, name)])
    return JSONBytesResponse(body, 200, {"x-request-id": request_id})


async def get_model(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    request_id = pipeline.new_request_id(request.headers.get("x-request-id"))
    name = request.path_params["model"]
    try:
        principal = gw.auth.authenticate(request.headers)
        if not _visible(principal, name):
            raise GatewayError(404, f"The model '{name}' does not exist or you do not have access to it.",
                               "invalid_request_error", "model", "model_not_found")
        gw.models.group(name)
    except GatewayError as err:
        return error_response(err, request_id)
    return JSONBytesResponse(gw.models.model_object(name), 200, {"x-request-id": request_id})


def routes() -> list[Route]:
    out = []
    for prefix in ("/v1", ""):
        out += [
            Route(f"{prefix}/chat/completions", chat_completions, methods=["POST"]),
            Route(f"{prefix}/completions", completions, methods=["POST"]),
            Route(f"{prefix}/embeddings", embeddings, methods=["POST"]),
            Route(f"{prefix}/models", list_models, methods=["GET"]),
            Route(f"{prefix}/models/{{model:path}}", get_model, methods=["GET"]),
        ]
    return out
