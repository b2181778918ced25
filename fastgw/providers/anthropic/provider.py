"""The Anthropic provider: OpenAI chat over the Messages API, plus native pass-through.

``chat_*`` translate OpenAI chat requests and responses (see ``request.py`` for the
mapping choices). ``messages_request`` / ``messages_stream_decoder`` serve Anthropic-format
clients (``/v1/messages``) against an Anthropic upstream without translation, so every
field (cache_control, thinking, server tools, betas) reaches the API untouched.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Mapping

import orjson

from ...errors import GatewayError
from ..base import Provider, UpstreamRequest
from ..openai_compat import parse_json_object
from .errors import PROVIDER, anthropic_error, stream_error
from .request import build_messages_body
from .response import message_to_openai
from .stream import AnthropicStreamDecoder, MessagesPassthroughDecoder

if TYPE_CHECKING:
    from ...config.schema import Deployment

ANTHROPIC_VERSION = "2023-06-01"


class AnthropicProvider(Provider):
    name: ClassVar[str] = PROVIDER
    default_api_base: ClassVar[str | None] = "https://api.anthropic.com"

    # URL and headers -------------------------------------------------------------------
    def messages_url(self, dep: "Deployment") -> str:
        """Accepts a base (``https://host``), a ``.../v1`` base, or the full messages URL."""
        base = (dep.api_base or self.default_api_base or "").rstrip("/")
        if base.endswith("/v1/messages"):
            return base
        if base.endswith("/v1"):
            return base + "/messages"
        return base + "/v1/messages"

    def headers(self, dep: "Deployment", beta: str | None = None) -> dict[str, str]:
        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "anthropic-version": ANTHROPIC_VERSION,
        }
        if dep.api_key:
            headers["x-api-key"] = dep.api_key
        extra = (dep.extra or {}).get("extra_headers")
        if isinstance(extra, dict):
            headers.update({str(k).lower(): str(v) for k, v in extra.items()})
        if beta:
            configured = headers.get("anthropic-beta")
            headers["anthropic-beta"] = f"{configured},{beta}" if configured else beta
        return headers

    def _post(self, dep: "Deployment", body: dict, beta: str | None = None) -> UpstreamRequest:
        return UpstreamRequest("POST", self.messages_url(dep), self.headers(dep, beta), orjson.dumps(body))

    # OpenAI chat -----------------------------------------------------------------------
    def chat_request(self, dep: "Deployment", body: dict, stream: bool) -> UpstreamRequest:
        anthropic_body = build_messages_body(dep, body)
        if stream:
            anthropic_body["stream"] = True
        return self._post(dep, anthropic_body)

    def chat_response(self, dep: "Deployment", data: bytes) -> dict:
        message = parse_json_object(self.name, data)
        if message.get("type") == "error":
            raise stream_error(message)  # an error envelope with a 200: status from its type
        return message_to_openai(message)

    def chat_stream_decoder(self, dep: "Deployment", body: dict) -> AnthropicStreamDecoder:
        return AnthropicStreamDecoder()

    # native Messages pass-through -------------------------------------------------------
    def messages_request(self, dep: "Deployment", body: dict, stream: bool, *,
                         beta: str | None = None) -> UpstreamRequest:
        """Forward an Anthropic Messages body as is: only ``model`` (and ``stream``) change.

        ``beta`` is the client's ``anthropic-beta`` header, forwarded with the configured one.
        Config-level extra params fill in fields the client did not send.
        """
        out = dict(body)
        out["model"] = dep.model
        if stream:
            out["stream"] = True
        else:
            out.pop("stream", None)
        for key, value in (dep.extra or {}).items():
            if key != "extra_headers":
                out.setdefault(key, value)
        return self._post(dep, out, beta)

    def messages_stream_decoder(self, dep: "Deployment | None" = None) -> MessagesPassthroughDecoder:
        return MessagesPassthroughDecoder()

    # errors ----------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
        return anthropic_error(status, headers, data)
