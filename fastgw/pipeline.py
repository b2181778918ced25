"""How one request travels: pick a deployment, call it, account for it.

``complete`` serves non-streaming calls; ``open_stream`` returns a stream that is not yet
committed to the client: it has read up to the first chunk, so a failure before that
point is still a plain HTTP error (and, with the router, a retry or fallback).
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from .auth import Principal
from .config.schema import Deployment
from .errors import GatewayError
from .gateway import CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Gateway
from .providers.anthropic import AnthropicProvider
from .providers.anthropic.stream import messages_response_usage
from .providers.base import Provider, StreamDecoder, UpstreamRequest, UpstreamResponse
from .providers.openai_compat import parse_json_object
from .usage import UsageRecord

MAX_ERROR_BODY = 1024 * 1024


@dataclass(slots=True)
class Call:
    """One client request as it moves through the gateway."""

    endpoint: str  # chat.completions | completions | embeddings | messages
    body: dict
    model_group: str
    principal: Principal
    request_id: str
    stream: bool = False
    include_usage: bool = False
    started: float = field(default_factory=time.perf_counter)
    record: UsageRecord = field(init=False)
    response_headers: dict[str, str] = field(default_factory=dict)
    # Anthropic-format ingress: the client's body translated for non-Anthropic upstreams,
    # and headers forwarded to Anthropic upstreams (anthropic-beta).
    openai_body: dict | None = None
    passthrough_headers: dict[str, str] = field(default_factory=dict)
    native: bool = False  # the last attempt used the provider's own format end to end

    def __post_init__(self) -> None:
        self.record = UsageRecord(
            ts=time.time(), request_id=self.request_id, endpoint=self.endpoint, key_hash=self.principal.key_hash,
            model_group=self.model_group, stream=self.stream,
        )

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


def new_request_id(client_value: str | None) -> str:
    if client_value and len(client_value) <= 200 and client_value.isprintable():
        return client_value
    return "req_" + uuid.uuid4().hex


def _timeouts(dep: Deployment, stream: bool) -> tuple[float, float]:
    total = (dep.params.stream_timeout if stream else None) or dep.params.timeout or DEFAULT_TIMEOUT
    return min(CONNECT_TIMEOUT, total), total


def _build_request(provider: Provider, dep: Deployment, call: Call) -> UpstreamRequest:
    if call.endpoint == "messages":
        call.native = isinstance(provider, AnthropicProvider)
        if call.native:
            return provider.messages_request(dep, call.body, call.stream,  # type: ignore[attr-defined]
                                             beta=call.passthrough_headers.get("anthropic-beta"))
        assert call.openai_body is not None
        return provider.chat_request(dep, call.openai_body, call.stream)
    if call.endpoint == "chat.completions":
        return provider.chat_request(dep, call.body, call.stream)
    if call.endpoint == "completions":
        return provider.completions_request(dep, call.body, call.stream)
    if call.endpoint == "embeddings":
        return provider.embeddings_request(dep, call.body)
    raise GatewayError(404, f"unknown endpoint {call.endpoint}", "invalid_request_error", None, "not_found")


def _parse_response(provider: Provider, dep: Deployment, call: Call, data: bytes) -> tuple[dict, dict | None]:
    """The response (OpenAI-shaped, or Anthropic-shaped on the native path) and its OpenAI usage."""
    if call.native:
        result = parse_json_object(provider.name, data)
        return result, messages_response_usage(data)
    if call.endpoint in ("chat.completions", "messages"):
        result = provider.chat_response(dep, data)
    elif call.endpoint == "completions":
        result = provider.completions_response(dep, data)
    else:
        result = provider.embeddings_response(dep, data, call.body)
    usage = result.get("usage")
    return result, usage if isinstance(usage, dict) else None


def _stream_decoder(provider: Provider, dep: Deployment, call: Call) -> StreamDecoder:
    if call.native:
        return PassthroughDecoder(provider.messages_stream_decoder(dep))  # type: ignore[attr-defined]
    if call.endpoint == "completions":
        return provider.completions_stream_decoder(dep, call.body)
    if call.endpoint == "messages":
        return provider.chat_stream_decoder(dep, call.openai_body or {})
    return provider.chat_stream_decoder(dep, call.body)


class PassthroughDecoder:
    """Adapts a byte-for-byte relay decoder to the chunk-list protocol the relay speaks.

    Its "chunks" are raw byte strings. An in-band error was already relayed to the
    client in its own format, so it is raised marked ``already_sent`` (recorded, not resent).
    """

    __slots__ = ("inner",)

    def __init__(self, inner) -> None:  # noqa: ANN001 - provider-specific relay decoder
        self.inner = inner

    @property
    def usage(self) -> dict | None:
        return self.inner.usage

    def feed(self, data: bytes) -> list:
        out = self.inner.feed(data)
        return [out] if out else []

    def close(self) -> list:
        self.inner.close()
        error = getattr(self.inner, "error", None)
        if error is not None:
            err = error if isinstance(error, GatewayError) else GatewayError(
                502, str(error), "api_error", None, "upstream_stream_error")
            err.already_sent = True  # type: ignore[attr-defined]
            raise err
        return []


async def _send(gw: Gateway, provider: Provider, dep: Deployment, call: Call) -> UpstreamResponse:
    """One upstream attempt up to the response headers; an error status becomes a GatewayError."""
    request = _build_request(provider, dep, call)
    connect_timeout, read_timeout = _timeouts(dep, call.stream)
    call.record.attempts += 1
    call.record.deployment_id = dep.id
    call.record.provider = dep.provider
    call.record.upstream_model = dep.model
    response = await gw.transport_for(provider).send(request, connect_timeout=connect_timeout,
                                                      read_timeout=read_timeout)
    if response.status >= 400:
        try:
            data = await response.read()
        finally:
            response.close()
        raise provider.error(response.status, response.headers, data[:MAX_ERROR_BODY])
    return response


def _pick(gw: Gateway, call: Call) -> Deployment:
    return gw.models.pick(gw.models.group(call.model_group))


def _note_deployment(call: Call, dep: Deployment) -> None:
    call.response_headers["x-fastgw-deployment"] = dep.id
    call.response_headers["x-fastgw-attempts"] = str(call.record.attempts)


async def complete(gw: Gateway, call: Call) -> dict:
    dep = _pick(gw, call)
    provider = gw.providers[dep.provider]
    response = await _send(gw, provider, dep, call)
    try:
        data = await response.read()
    finally:
        response.close()
    result, usage = _parse_response(provider, dep, call, data)
    call.record.set_usage(usage)
    _note_deployment(call, dep)
    return result


@dataclass(slots=True)
class OpenStream:
    """An upstream stream read up to its first chunk(s); not yet committed to the client."""

    deployment: Deployment
    response: UpstreamResponse
    decoder: StreamDecoder
    first_chunks: list[dict]
    rest: AsyncIterator[bytes]
    finished: bool  # the body already ended while looking for the first chunk

    def close(self) -> None:
        self.response.close()


async def open_stream(gw: Gateway, call: Call) -> OpenStream:
    dep = _pick(gw, call)
    provider = gw.providers[dep.provider]
    response = await _send(gw, provider, dep, call)
    decoder = _stream_decoder(provider, dep, call)
    body = response.iter_chunks().__aiter__()
    chunks: list[dict] = []
    finished = False
    try:
        while not chunks:
            try:
                data = await body.__anext__()
            except StopAsyncIteration:
                chunks.extend(decoder.close())
                finished = True
                break
            chunks.extend(decoder.feed(data))
    except BaseException:
        response.close()
        raise
    call.record.ttft_ms = call.elapsed_ms()
    _note_deployment(call, dep)
    return OpenStream(dep, response, decoder, chunks, body, finished)


def finish_record(gw: Gateway, call: Call, status: int, error: GatewayError | None = None,
                  error_type: str | None = None) -> None:
    record = call.record
    record.status = status
    record.latency_ms = call.elapsed_ms()
    if error is not None:
        record.error_type = error.code or error.type
    if error_type is not None:
        record.error_type = error_type
    gw.usage_log.record(record)


ChunkEncoder = Callable[[dict], bytes]
