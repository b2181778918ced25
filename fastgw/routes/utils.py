"""``POST /utils/token_counter`` (LiteLLM's path): exact counts for OpenAI encodings,
labelled approximations for other providers' models."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from .. import pipeline, validation
from ..errors import GatewayError, bad_request
from ..gateway import Gateway
from ..responses import JSONBytesResponse, error_response
from ..tokens import count_message_tokens, count_text_tokens


async def token_counter(request: Request) -> Response:
    gw: Gateway = request.app.state.gateway
    request_id = pipeline.new_request_id(request.headers.get("x-request-id"))
    try:
        gw.auth.authenticate(request.headers)
        body = await validation.read_json(request, gw.max_body_bytes)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise bad_request("'model' is a required property", "model", "missing_required_parameter")
        # A configured group counts with its first deployment's model; anything else is taken as a model id.
        upstream_model = gw.models.groups[model][0].model if model in gw.models.groups else model
        messages, prompt = body.get("messages"), body.get("prompt")
        if messages is not None:
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                raise bad_request("'messages' must be an array of message objects", "messages")
            tools = body.get("tools") if isinstance(body.get("tools"), list) else None
            count = count_message_tokens(upstream_model, messages, tools)
        elif isinstance(prompt, str):
            count = count_text_tokens(upstream_model, prompt)
        else:
            raise bad_request("send either 'messages' (array) or 'prompt' (string)", "messages",
                              "missing_required_parameter")
    except GatewayError as err:
        return error_response(err, request_id)
    result = {
        "total_tokens": count.tokens,
        "request_model": model,
        "model_used": upstream_model,
        "tokenizer_type": count.encoding if count.exact else f"approximate ({count.encoding})",
        "exact": count.exact,
    }
    return JSONBytesResponse(result, 200, {"x-request-id": request_id})


def routes() -> list[Route]:
    return [Route("/utils/token_counter", token_counter, methods=["POST"])]
