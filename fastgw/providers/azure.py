"""Azure OpenAI: OpenAI's wire format behind per-deployment URLs and an ``api-key`` header.

``api_base`` is the resource endpoint (``https://{resource}.openai.azure.com``). With an
``api_version`` the classic ``/openai/deployments/{deployment}/...?api-version=`` routes
are used; without one, the v1 API (``/openai/v1/...``, model in the body).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar
from urllib.parse import quote

from .openai_compat import OpenAICompatProvider

if TYPE_CHECKING:
    from ..config.schema import Deployment


class AzureProvider(OpenAICompatProvider):
    name: ClassVar[str] = "azure"
    default_api_base: ClassVar[str | None] = None
    requires_api_base: ClassVar[bool] = True

    def url(self, dep: "Deployment", path: str) -> str:
        base = self.base_url(dep).rstrip("/")
        if base.endswith("/openai"):
            base = base[: -len("/openai")]
        if dep.params.api_version:
            return f"{base}/openai/deployments/{quote(dep.model, safe='')}/{path}?api-version={quote(dep.params.api_version)}"
        return f"{base}/openai/v1/{path}"

    def auth_headers(self, dep: "Deployment") -> dict[str, str]:
        return {"api-key": dep.api_key} if dep.api_key else {}
