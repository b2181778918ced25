"""Anthropic-format ingress: ``POST /v1/messages`` for the anthropic SDK and Claude Code.

Any configured model can serve it. Anthropic upstreams get the client's body as is
(every field, ``cache_control`` included) and their bytes go back untouched; other
providers are reached through the OpenAI translation and answered in Anthropic's format.
"""
from __future__ import annotations

from functools import partial

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import pipeline, validation
from ..errors import GatewayError
from ..gateway import Gateway
from ..ingress.anthropic import (
    MessagesStreamEncoder,
    anthropic_error_body,
    anthropic_error_status,
    messages_to_openai,
    openai_to_messages_response,
    sse_event,
    validate_messages_request,
)
from ..pipeline import Call
from ..providers.anthropic import AnthropicProvider
from ..relay import SSERelayResponse
from ..responses import JSONBytesResponse


class RawEncoder:
    """For native pass-through: the upstream's Anthropic events are relayed unchanged."""

    __slots__ = ()

    def feed(self, chunk: bytes) -> bytes:
        return chunk

    def finish(self) -> bytes:
        return b""

    def error(self, err: GatewayError) -> bytes:
        if getattr(err, "already_sent", False):
            return b""
        return sse_event("error", anthropic_error_body(err))


def _error(err: GatewayError, request_id: str) -> Response:
    headers = dict(err.headers)
    headers["x-request-id"] = request_id
    headers["request-id"] = request_id
    return JSONBytesResponse(anthropic_error_body(err), anthropic_error_status(err), headers)


def _needs_translation(gw: Gateway, model: str) -> bool:
    return any(not isinstance(gw.providers[d.provider], AnthropicProvider) for d in gw.models.group(model))


async def _prepare(request: Request, gw: Gateway, request_id: str) -> tuple[Call, dict]:
    principal = gw.auth.authenticate(request.headers)
    body = await validation.read_json(request, gw.max_body_bytes)
    validate_messages_request(body)
    model = body["model"]
    gw.models.group(model)
    call = Call(endpoint="messages", body=body, model_group=model, principal=principal, request_id=request_id,
                stream=bool(body.get("stream")), include_usage=True)
    if _needs_translation(gw, model):
        call.openai_body = messages_to_openai(body, extensions=False)
    beta = request.headers.get("anthropic-beta")
    if beta:
        call.passthrough_headers["anthropic-beta"] = beta
    return call, body


async def messages(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    request_id = pipeline.new_request_id(request.headers.get("x-request-id"))
    call: Call | None = None
    try:
        call, body = await _prepare(request, gw, request_id)
        gw.governance.admit(call)  # governance: model access, budget reservation, rate limits (or raise)
        model = call.model_group
        if call.stream:
            opened = await pipeline.open_stream(gw, call)
            gw.governance.for_stream(call)  # governance: x-fastgw-unpriced before the headers go out
            encoder = RawEncoder() if call.native else MessagesStreamEncoder(model)
            return SSERelayResponse(gw, call, opened, encoder)  # type: ignore[return-value]
        result = await pipeline.complete(gw, call)
        if not call.native:
            result = openai_to_messages_response(result, model)
        pipeline.close_record(gw, call, 200)
        return JSONBytesResponse(result, 200, {"x-request-id": request_id, **call.response_headers},
                                 after_send=partial(pipeline.account, gw, call))
    except GatewayError as err:
        pipeline.account_failure(gw, "messages", request_id, call, err)
        return _error(err, request_id)
    except BaseException:
        gw.governance.release(call)  # governance: a crash or cancellation must not leak a reservation
        raise


async def count_tokens(request: Request) -> Response:
    """Input tokens of a Messages request, counted locally (approximate for non-OpenAI models)."""
    from ..tokens import count_message_tokens

    gw: Gateway = request.app.state.gateway
    request_id = pipeline.new_request_id(request.headers.get("x-request-id"))
    try:
        gw.auth.authenticate(request.headers)
        body = await validation.read_json(request, gw.max_body_bytes)
        body.setdefault("max_tokens", 1)
        validate_messages_request(body)
        deployments = gw.models.group(body["model"])
        translated = messages_to_openai(body, extensions=False)
        count = count_message_tokens(deployments[0].model, translated["messages"], translated.get("tools"))
    except GatewayError as err:
        return _error(err, request_id)
    headers = {"x-request-id": request_id, "x-fastgw-token-count": "exact" if count.exact else "approximate"}
    return JSONBytesResponse({"input_tokens": count.tokens}, 200, headers)


def routes() -> list[Route]:
    return [
        Route("/v1/messages", messages, methods=["POST"]),
        Route("/messages", messages, methods=["POST"]),
        Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
        Route("/messages/count_tokens", count_tokens, methods=["POST"]),
    ]
