"""Google AI Studio (Generative Language API): URLs, auth and the Provider methods.

The translation itself lives in ``request``/``response``/``stream``/``embeddings``;
Vertex AI subclasses this and changes only where requests go and how they authenticate.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, ClassVar, Mapping
from urllib.parse import quote


from ...errors import GatewayError
from ..base import Provider, UpstreamRequest
from ..common import json_post
from .embeddings import embed_request, embed_response
from .errors import gemini_error
from .request import build_request
from .response import parse_response
from .stream import GeminiStreamDecoder

if TYPE_CHECKING:
    from ...config.schema import Deployment

_VERSION_SUFFIX = re.compile(r"/v\d+(?:(?:alpha|beta)\d*)?/?$")


class GeminiProvider(Provider):
    name: ClassVar[str] = "gemini"
    default_api_base: ClassVar[str | None] = "https://generativelanguage.googleapis.com"
    default_api_version: ClassVar[str] = "v1beta"

    # URL and auth ---------------------------------------------------------------------
    def api_version(self, dep: "Deployment") -> str:
        return dep.params.api_version or self.default_api_version

    def model_path(self, dep: "Deployment") -> str:
        """``models/{id}`` (a ``models/`` or ``tunedModels/`` prefix in the config is kept)."""
        model = dep.model
        if model.startswith(("models/", "tunedModels/")):
            prefix, _, model = model.partition("/")
            return f"{prefix}/{quote(model, safe='@=')}"
        return f"models/{quote(model, safe='@=')}"

    def base_url(self, dep: "Deployment") -> str:
        """API root including the version segment (kept if ``api_base`` already has one)."""
        base = (dep.api_base or self.default_api_base or "").rstrip("/")
        return base if _VERSION_SUFFIX.search(base) else f"{base}/{self.api_version(dep)}"

    def endpoint(self, dep: "Deployment", method: str) -> str:
        return f"{self.base_url(dep)}/{self.model_path(dep)}:{method}"

    def auth_headers(self, dep: "Deployment") -> dict[str, str]:
        return {"x-goog-api-key": dep.api_key} if dep.api_key else {}

    def _post(self, dep: "Deployment", url: str, body: dict, accept: str = "application/json") -> UpstreamRequest:
        return json_post(url, body, self.auth_headers(dep), accept)

    # chat ----------------------------------------------------------------------------
    def chat_request(self, dep: "Deployment", body: dict, stream: bool) -> UpstreamRequest:
        payload = build_request(dep, body, self.name)
        if stream:
            return self._post(dep, self.endpoint(dep, "streamGenerateContent") + "?alt=sse", payload,
                              "text/event-stream")
        return self._post(dep, self.endpoint(dep, "generateContent"), payload)

    def chat_response(self, dep: "Deployment", data: bytes) -> dict:
        return parse_response(self.name, dep.model, data)

    def chat_stream_decoder(self, dep: "Deployment", body: dict) -> GeminiStreamDecoder:
        return GeminiStreamDecoder(self.name, dep.model)

    # embeddings ------------------------------------------------------------------------
    def embeddings_request(self, dep: "Deployment", body: dict) -> UpstreamRequest:
        body = {**(dep.extra or {}), **body}
        method, payload = embed_request(self.model_path(dep), body, self.name)
        return self._post(dep, self.endpoint(dep, method), payload)

    def embeddings_response(self, dep: "Deployment", data: bytes, body: dict) -> dict:
        return embed_response(self.name, dep.model, data, {**(dep.extra or {}), **body})

    # errors ----------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
        return gemini_error(self.name, status, headers, data)
