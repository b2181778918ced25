"""AWS Bedrock Runtime through the Converse API (one request shape for every chat model).

Requests are signed here, inside ``chat_request``: the returned UpstreamRequest carries the
final headers and exact body bytes, so the transport sends it unchanged. The transport must
not re-encode the URL: the model id travels as ``%3A``-encoded and the signature covers that
exact path. The clock, id source and environment are injectable so tests are deterministic.
"""
from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Callable, ClassVar, Mapping

import orjson

from ...errors import GatewayError
from ..base import Provider, UpstreamRequest
from . import endpoint
from .converse_request import build_converse_body
from .converse_response import chat_completion
from .embeddings import titan_body, titan_response
from .errors import http_error
from .sigv4 import sign_headers
from .stream import ConverseStreamDecoder

if TYPE_CHECKING:
    from ...config.schema import Deployment


def _new_id() -> str:
    return "chatcmpl-" + uuid.uuid4().hex


class BedrockProvider(Provider):
    name: ClassVar[str] = "bedrock"
    default_api_base: ClassVar[str | None] = None

    def __init__(self, *, clock: Callable[[], float] = time.time, new_id: Callable[[], str] = _new_id,
                 environ: Mapping[str, str] | None = None) -> None:
        self._clock = clock
        self._new_id = new_id
        self._environ = os.environ if environ is None else environ

    # requests --------------------------------------------------------------------------
    def signed_request(self, dep: "Deployment", operation: str, payload: dict) -> UpstreamRequest:
        """POST ``payload`` to ``/model/{id}/{operation}`` with SigV4 or a Bedrock API key."""
        url = endpoint.url(dep, operation, self._environ)
        body = orjson.dumps(payload)
        auth = endpoint.auth(dep, self._environ)
        headers = {"content-type": "application/json"}
        if auth.bearer_token is not None:
            headers["authorization"] = f"Bearer {auth.bearer_token}"
            return UpstreamRequest("POST", url, headers, body)
        assert auth.credentials is not None
        region = endpoint.region(dep, self._environ)
        if region is None:
            raise endpoint.config_error(dep, "aws_region_name is required to sign bedrock requests")
        now = datetime.fromtimestamp(self._clock(), tz=timezone.utc)
        return UpstreamRequest("POST", url, sign_headers("POST", url, headers, body, auth.credentials, region, now),
                               body)

    # chat ------------------------------------------------------------------------------
    def chat_request(self, dep: "Deployment", body: dict, stream: bool) -> UpstreamRequest:
        return self.signed_request(dep, "converse-stream" if stream else "converse", build_converse_body(dep, body))

    def chat_response(self, dep: "Deployment", data: bytes) -> dict:
        return chat_completion(data, model=dep.model, response_id=self._new_id(), created=int(self._clock()))

    def chat_stream_decoder(self, dep: "Deployment", body: dict) -> ConverseStreamDecoder:
        return ConverseStreamDecoder(model=dep.model, response_id=self._new_id(), created=int(self._clock()))

    # embeddings (Amazon Titan text via InvokeModel) -----------------------------------------
    def embeddings_request(self, dep: "Deployment", body: dict) -> UpstreamRequest:
        return self.signed_request(dep, "invoke", titan_body(dep, body))

    def embeddings_response(self, dep: "Deployment", data: bytes, body: dict) -> dict:
        return titan_response(dep, data, body)

    # errors ----------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
        return http_error(status, headers, data)
