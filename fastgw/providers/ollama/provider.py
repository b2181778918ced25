"""Ollama native API (``/api/chat`` NDJSON, ``/api/embed``): URLs, auth and Provider methods.

No auth locally; a configured ``api_key`` is sent as a bearer token (hosted Ollama). The
OpenAI-compatible Ollama API stays available as ``ollama_chat/``.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar, Mapping


from ...errors import GatewayError
from ..base import Provider, UpstreamRequest
from ..common import bearer, json_post
from ..openai_compat import parse_json_object
from ..openai_shapes import embedding_inputs, embeddings_list
from .errors import ollama_error
from .request import build_request
from .response import parse_response
from .stream import OllamaStreamDecoder

if TYPE_CHECKING:
    from ...config.schema import Deployment

_API_SUFFIX = re.compile(r"/(?:api|v1)/?$")


class OllamaProvider(Provider):
    name: ClassVar[str] = "ollama"
    default_api_base: ClassVar[str | None] = "http://localhost:11434"

    def url(self, dep: "Deployment", path: str) -> str:
        """``api_base`` is the server root; a trailing ``/api`` or ``/v1`` is tolerated."""
        base = _API_SUFFIX.sub("", (dep.api_base or self.default_api_base or "").rstrip("/"))
        return f"{base}/api/{path}"

    def _post(self, dep: "Deployment", path: str, body: dict, accept: str = "application/json") -> UpstreamRequest:
        return json_post(self.url(dep, path), body, bearer(dep.api_key), accept)

    def chat_request(self, dep: "Deployment", body: dict, stream: bool) -> UpstreamRequest:
        payload = build_request(dep, body, self.name, stream)
        return self._post(dep, "chat", payload, "application/x-ndjson" if stream else "application/json")

    def chat_response(self, dep: "Deployment", data: bytes) -> dict:
        return parse_response(self.name, dep.model, data)

    def chat_stream_decoder(self, dep: "Deployment", body: dict) -> OllamaStreamDecoder:
        return OllamaStreamDecoder(self.name, dep.model)

    def embeddings_request(self, dep: "Deployment", body: dict) -> UpstreamRequest:
        body = {**(dep.extra or {}), **body}
        embedding_inputs(body, self.name)  # rejects token-id input early
        payload: dict[str, Any] = {"model": dep.model, "input": body["input"]}
        for key in ("dimensions", "truncate", "keep_alive", "options"):
            if body.get(key) is not None:
                payload[key] = body[key]
        return self._post(dep, "embed", payload)

    def embeddings_response(self, dep: "Deployment", data: bytes, body: dict) -> dict:
        response = parse_json_object(self.name, data)
        vectors = response.get("embeddings")
        if not isinstance(vectors, list):
            raise GatewayError(502, f"{self.name}: embed response has no embeddings", "api_error", None,
                               "bad_upstream_response", retryable=True)
        tokens = int(response.get("prompt_eval_count") or 0)
        return embeddings_list(vectors, dep.model, body.get("encoding_format"), tokens)

    def error(self, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
        return ollama_error(self.name, status, headers, data)
