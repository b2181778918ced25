"""Vertex AI Gemini: the Gemini wire format behind project/location URLs and OAuth.

Chat bodies, responses, streams and errors are Gemini's (inherited). What differs:
- URL ``https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/
  {location}/publishers/google/models/{model}:{method}``; location ``global`` uses the host
  ``aiplatform.googleapis.com``. ``api_base`` replaces only scheme and host.
- ``Authorization: Bearer <token>``, the token being ``api_key`` or ``vertex_credentials``.
  fastgw does no OAuth exchange, so a service-account JSON is refused with a clear error.
- Embeddings use the Vertex ``:predict`` method (``instances``/``predictions``), which also
  reports token counts.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import quote

from ...errors import GatewayError
from ..base import UpstreamRequest
from ..common import bearer
from ..gemini.provider import GeminiProvider
from ..openai_compat import parse_json_object
from ..openai_shapes import embedding_inputs, embeddings_list, estimate_tokens

if TYPE_CHECKING:
    from ...config.schema import Deployment

DEFAULT_LOCATION = "us-central1"


def _config_error(dep: "Deployment", message: str) -> GatewayError:
    return GatewayError(500, f"deployment {dep.id}: {message}", "api_error", None, "config_error")


class VertexAIProvider(GeminiProvider):
    name: ClassVar[str] = "vertex_ai"
    default_api_base: ClassVar[str | None] = None
    default_api_version: ClassVar[str] = "v1"

    def location(self, dep: "Deployment") -> str:
        return dep.params.vertex_location or DEFAULT_LOCATION

    def host_url(self, dep: "Deployment") -> str:
        if dep.api_base:
            return dep.api_base.rstrip("/")
        location = self.location(dep)
        host = "aiplatform.googleapis.com" if location == "global" else f"{location}-aiplatform.googleapis.com"
        return f"https://{host}"

    def endpoint(self, dep: "Deployment", method: str) -> str:
        project = dep.params.vertex_project
        if not project:
            raise _config_error(dep, "vertex_project is required for vertex_ai")
        model = dep.model.rsplit("/", 1)[-1]
        return (f"{self.host_url(dep)}/{self.api_version(dep)}/projects/{quote(project, safe='')}/locations/"
                f"{quote(self.location(dep), safe='')}/publishers/google/models/{quote(model, safe='@=')}:{method}")

    def auth_headers(self, dep: "Deployment") -> dict[str, str]:
        token = dep.api_key or dep.params.vertex_credentials
        if token and (token.lstrip().startswith("{") or token.endswith(".json")):
            raise _config_error(dep, "vertex_credentials must be an OAuth access token; service-account JSON "
                                     "needs a token exchange, which fastgw does not do")
        return bearer(token)

    # embeddings (:predict) ------------------------------------------------------------
    def embeddings_request(self, dep: "Deployment", body: dict) -> UpstreamRequest:
        body = {**(dep.extra or {}), **body}
        texts, _ = embedding_inputs(body, self.name)
        instance: dict[str, Any] = {}
        task_type = body.get("task_type") or body.get("taskType")
        if task_type:
            instance["task_type"] = task_type
        if body.get("title"):
            instance["title"] = body["title"]
        payload: dict[str, Any] = {"instances": [{"content": t, **instance} for t in texts]}
        if body.get("dimensions") is not None:
            payload["parameters"] = {"outputDimensionality": body["dimensions"]}
        return self._post(dep, self.endpoint(dep, "predict"), payload)

    def embeddings_response(self, dep: "Deployment", data: bytes, body: dict) -> dict:
        response = parse_json_object(self.name, data)
        vectors, tokens = [], 0
        for prediction in response.get("predictions") or ():
            embeddings = prediction.get("embeddings") or {}
            vectors.append(embeddings.get("values") or [])
            tokens += int((embeddings.get("statistics") or {}).get("token_count") or 0)
        if not tokens:
            tokens = estimate_tokens(embedding_inputs(body, self.name)[0])
        return embeddings_list(vectors, dep.model, body.get("encoding_format"), tokens)
