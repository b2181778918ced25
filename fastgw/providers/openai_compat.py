"""The OpenAI protocol family: OpenAI itself and every server that speaks its API.

Requests and responses pass through untouched except ``model`` (the deployment's id
upstream) and ``stream_options.include_usage`` (always asked, so every stream is
accounted for). Presets differ only in base URL; ``openai/`` with any ``api_base``
reaches any OpenAI-compatible server.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Mapping

import orjson

from .._core.framing import SSEDecoder
from ..errors import GatewayError
from .base import Provider, UpstreamRequest
from .common import bearer, join_url, json_post, make_error, with_extra_params

if TYPE_CHECKING:
    from ..config.schema import Deployment


def truncated(provider: str) -> GatewayError:
    return GatewayError(
        502, f"{provider}: upstream stream ended before its terminator", "api_error", None, "stream_truncated", retryable=True
    )


class OpenAIStreamDecoder:
    """SSE ``data:`` chunks until ``[DONE]``; an ``error`` object in the stream is an error."""

    __slots__ = ("_sse", "_provider", "usage", "done")

    def __init__(self, provider: str) -> None:
        self._sse = SSEDecoder()
        self._provider = provider
        self.usage: dict | None = None
        self.done = False

    def feed(self, data: bytes) -> list[dict]:
        out = []
        for _event, payload in self._sse.feed(data):
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                raise GatewayError(
                    502, f"{self._provider}: malformed stream event from upstream", "api_error", None, "malformed_stream",
                    retryable=True,
                ) from None
            if not isinstance(chunk, dict):
                continue
            error = chunk.get("error")
            if error is not None:
                raise stream_error(self._provider, error)
            usage = chunk.get("usage")
            if usage:
                self.usage = usage
            out.append(chunk)
        return out

    def close(self) -> list[dict]:
        if not self.done:
            raise truncated(self._provider)
        return []


def stream_error(provider: str, error: object) -> GatewayError:
    if not isinstance(error, dict):
        error = {"message": str(error)}
    code = error.get("code")
    etype = error.get("type") or ""
    status = 503 if ("overload" in str(code) or "overload" in etype) else 500
    if code in ("rate_limit_exceeded",) or etype in ("requests", "tokens", "rate_limit_error"):
        status = 429
    return make_error(
        status, str(error.get("message") or "upstream error"), type=error.get("type") or "api_error",
        param=error.get("param"), code=code if isinstance(code, str) else None, provider=provider,
    )


class OpenAICompatProvider(Provider):
    name: ClassVar[str] = "openai"
    default_api_base: ClassVar[str | None] = "https://api.openai.com/v1"

    # URL and auth ---------------------------------------------------------------------
    def base_url(self, dep: "Deployment") -> str:
        base = dep.api_base or self.default_api_base
        if base is None:
            raise GatewayError(502, f"deployment {dep.id}: api_base is required", "api_error", None, "config_error")
        return base

    def url(self, dep: "Deployment", path: str) -> str:
        return join_url(self.base_url(dep), path)

    def auth_headers(self, dep: "Deployment") -> dict[str, str]:
        headers = bearer(dep.api_key)
        if dep.params.organization:
            headers["openai-organization"] = dep.params.organization
        return headers

    def _post(self, dep: "Deployment", path: str, body: dict) -> UpstreamRequest:
        return json_post(self.url(dep, path), body, self.auth_headers(dep))

    # chat ----------------------------------------------------------------------------
    def prepare_body(self, dep: "Deployment", body: dict, stream: bool) -> dict:
        body = with_extra_params(dep, dict(body))
        body["model"] = dep.model
        if stream:
            options = dict(body.get("stream_options") or {})
            options["include_usage"] = True
            body["stream_options"] = options
        return body

    def chat_request(self, dep: "Deployment", body: dict, stream: bool) -> UpstreamRequest:
        return self._post(dep, "chat/completions", self.prepare_body(dep, body, stream))

    def chat_response(self, dep: "Deployment", data: bytes) -> dict:
        return parse_json_object(self.name, data)

    def chat_stream_decoder(self, dep: "Deployment", body: dict) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(self.name)

    # legacy completions ----------------------------------------------------------------
    def completions_request(self, dep: "Deployment", body: dict, stream: bool) -> UpstreamRequest:
        return self._post(dep, "completions", self.prepare_body(dep, body, stream))

    def completions_response(self, dep: "Deployment", data: bytes) -> dict:
        return parse_json_object(self.name, data)

    def completions_stream_decoder(self, dep: "Deployment", body: dict) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(self.name)

    # embeddings ------------------------------------------------------------------------
    def embeddings_request(self, dep: "Deployment", body: dict) -> UpstreamRequest:
        body = dict(body)
        body["model"] = dep.model
        for key, value in (dep.extra or {}).items():
            body.setdefault(key, value)
        return self._post(dep, "embeddings", body)

    def embeddings_response(self, dep: "Deployment", data: bytes, body: dict) -> dict:
        return parse_json_object(self.name, data)

    # errors ----------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
        return openai_error(self.name, status, headers, data)


def parse_json_object(provider: str, data: bytes) -> dict:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError:
        value = None
    if not isinstance(value, dict):
        raise GatewayError(502, f"{provider}: upstream returned a body that is not a JSON object", "api_error", None,
                           "bad_upstream_response", retryable=True)
    return value


def openai_error(provider: str, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
    """OpenAI-shaped error bodies (also Azure's and most compatible servers')."""
    message, etype, param, code = f"upstream returned HTTP {status}", None, None, None
    try:
        body = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        message = str(error.get("message") or message)
        etype = error.get("type") if isinstance(error.get("type"), str) else None
        param = error.get("param") if isinstance(error.get("param"), str) else None
        raw_code = error.get("code")
        code = raw_code if isinstance(raw_code, str) and not raw_code.isdigit() else None
    elif isinstance(error, str):
        message = error
    elif isinstance(body, dict) and isinstance(body.get("message"), str):
        message = body["message"]
    if code == "content_filter" or (code is None and "content management policy" in message):
        code = "content_policy_violation"
    if code is None and status == 400 and ("context length" in message or "maximum context" in message):
        code = "context_length_exceeded"
    return make_error(status, message, type=etype, param=param, code=code, headers=headers, provider=provider)


def preset(name: str, api_base: str | None, *, requires_api_base: bool = False) -> type[OpenAICompatProvider]:
    """A named OpenAI-compatible server: only the default base URL differs."""
    return type(
        f"{name.title().replace('_', '')}Provider",
        (OpenAICompatProvider,),
        {"name": name, "default_api_base": api_base, "requires_api_base": requires_api_base, "__module__": __name__},
    )


PRESETS: dict[str, type[OpenAICompatProvider]] = {
    "openai": OpenAICompatProvider,
    "openrouter": preset("openrouter", "https://openrouter.ai/api/v1"),
    "groq": preset("groq", "https://api.groq.com/openai/v1"),
    "mistral": preset("mistral", "https://api.mistral.ai/v1"),
    "deepseek": preset("deepseek", "https://api.deepseek.com/v1"),
    "together_ai": preset("together_ai", "https://api.together.xyz/v1"),
    "fireworks_ai": preset("fireworks_ai", "https://api.fireworks.ai/inference/v1"),
    "xai": preset("xai", "https://api.x.ai/v1"),
    "hosted_vllm": preset("hosted_vllm", None, requires_api_base=True),
    "vllm": preset("vllm", None, requires_api_base=True),
    "ollama_chat": preset("ollama_chat", "http://localhost:11434/v1"),
    "lm_studio": preset("lm_studio", "http://localhost:1234/v1"),
}
