"""Cohere v2 (``/v2/chat``, ``/v2/embed``, bearer auth): URLs, auth and Provider methods."""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar, Mapping


from ...errors import GatewayError
from ..base import Provider, UpstreamRequest
from ..common import bearer, json_post
from .embeddings import embed_request, embed_response
from .errors import cohere_error
from .request import build_request
from .response import parse_response
from .stream import CohereStreamDecoder

if TYPE_CHECKING:
    from ...config.schema import Deployment

_VERSION_SUFFIX = re.compile(r"/v[12]/?$")


class CohereProvider(Provider):
    name: ClassVar[str] = "cohere"
    default_api_base: ClassVar[str | None] = "https://api.cohere.com"

    def url(self, dep: "Deployment", path: str) -> str:
        """``api_base`` is the host; a trailing ``/v1`` or ``/v2`` in it is tolerated."""
        base = _VERSION_SUFFIX.sub("", (dep.api_base or self.default_api_base or "").rstrip("/"))
        return f"{base}/v2/{path}"

    def _post(self, dep: "Deployment", path: str, body: dict, accept: str = "application/json") -> UpstreamRequest:
        return json_post(self.url(dep, path), body, bearer(dep.api_key), accept)

    def chat_request(self, dep: "Deployment", body: dict, stream: bool) -> UpstreamRequest:
        payload = build_request(dep, body, self.name, stream)
        return self._post(dep, "chat", payload, "text/event-stream" if stream else "application/json")

    def chat_response(self, dep: "Deployment", data: bytes) -> dict:
        return parse_response(self.name, dep.model, data)

    def chat_stream_decoder(self, dep: "Deployment", body: dict) -> CohereStreamDecoder:
        return CohereStreamDecoder(self.name, dep.model)

    def embeddings_request(self, dep: "Deployment", body: dict) -> UpstreamRequest:
        return self._post(dep, "embed", embed_request(dep.model, {**(dep.extra or {}), **body}, self.name))

    def embeddings_response(self, dep: "Deployment", data: bytes, body: dict) -> dict:
        return embed_response(self.name, dep.model, data, body)

    def error(self, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
        return cohere_error(self.name, status, headers, data)
