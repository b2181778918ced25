"""The contract every provider module implements.

A provider is pure translation: it builds the upstream HTTP request from an OpenAI-shaped
body and turns the upstream's bytes back into OpenAI-shaped dicts. It never does I/O;
the pipeline sends the request through a :class:`Transport` and feeds the bytes back.
Keeping I/O out makes every provider testable against transcripts byte for byte.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, AsyncIterator, ClassVar, Mapping, Protocol

from ..errors import GatewayError

if TYPE_CHECKING:
    from ..config.schema import Deployment


@dataclass(slots=True)
class UpstreamRequest:
    """``url`` must be fully percent-encoded: transports send it byte for byte."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None = None


class UpstreamResponse(Protocol):
    status: int
    headers: Mapping[str, str]

    async def read(self) -> bytes: ...

    def iter_chunks(self) -> AsyncIterator[bytes]: ...

    def close(self) -> None:
        """Release the connection; aborts it if the body was not fully read."""


class Transport(Protocol):
    async def send(self, request: UpstreamRequest, *, connect_timeout: float, read_timeout: float,
                   wait: str = "headers") -> UpstreamResponse:
        """``wait``: what the caller reads next (``"first_bytes"`` of a stream, or the
        ``"whole_body"``); a transport may wait for it before returning, as long as the
        response holds the same."""


class StreamDecoder(Protocol):
    """Turns an upstream streaming body into OpenAI ``chat.completion.chunk`` dicts.

    ``feed`` takes bytes exactly as they came off the socket (any boundaries) and returns
    the chunks completed by them. It raises :class:`GatewayError` for an in-band error
    event or malformed framing. ``close`` is called at end of body and raises
    :class:`GatewayError` (code ``stream_truncated``) if the provider's terminator was not
    seen. ``usage`` holds the OpenAI usage dict once the upstream reported it.
    """

    usage: dict | None

    def feed(self, data: bytes) -> list[dict]: ...

    def close(self) -> list[dict]: ...


def unsupported(provider: str, param: str, what: str | None = None) -> GatewayError:
    return GatewayError(
        400,
        f"{what or param!s} is not supported by provider {provider!r}; set drop_params: true to drop it",
        "invalid_request_error",
        param,
        "unsupported_parameter",
    )


class Provider:
    """Base class; subclasses override what their upstream supports.

    ``name`` is the prefix in ``litellm_params.model`` (``anthropic/claude-...``).
    ``local_transport`` is set only by providers answered in-process (the mock).
    """

    name: ClassVar[str] = ""
    default_api_base: ClassVar[str | None] = None
    requires_api_base: ClassVar[bool] = False
    local_transport: ClassVar[Transport | None] = None

    # chat completions -------------------------------------------------------------
    def chat_request(self, dep: "Deployment", body: dict, stream: bool) -> UpstreamRequest:
        raise unsupported(self.name, "model", "chat completions")

    def chat_response(self, dep: "Deployment", data: bytes) -> dict:
        raise NotImplementedError

    def chat_stream_decoder(self, dep: "Deployment", body: dict) -> StreamDecoder:
        raise NotImplementedError

    # legacy text completions -------------------------------------------------------
    def completions_request(self, dep: "Deployment", body: dict, stream: bool) -> UpstreamRequest:
        raise unsupported(self.name, "prompt", "/v1/completions")

    def completions_response(self, dep: "Deployment", data: bytes) -> dict:
        raise NotImplementedError

    def completions_stream_decoder(self, dep: "Deployment", body: dict) -> StreamDecoder:
        raise NotImplementedError

    # embeddings --------------------------------------------------------------------
    def embeddings_request(self, dep: "Deployment", body: dict) -> UpstreamRequest:
        raise unsupported(self.name, "model", "embeddings")

    def embeddings_response(self, dep: "Deployment", data: bytes, body: dict) -> dict:
        raise NotImplementedError

    # errors ------------------------------------------------------------------------
    def error(self, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
        """Map an upstream error response onto a GatewayError (status kept)."""
        raise NotImplementedError


@dataclass(slots=True)
class ProviderInfo:
    """What ``check-config`` and ``/v1/models`` show about a provider."""

    name: str
    aliases: tuple[str, ...] = field(default_factory=tuple)
