"""How one request travels: pick a deployment, call it, account for it.

``complete`` serves non-streaming calls; ``open_stream`` returns a stream that is not yet
committed to the client: it has read up to the first content chunk, so a failure before
that point is still a retry, a fallback or a plain HTTP error. Both go through the
router (``fastgw/router/``): every attempt is accounted for in the usage log.
"""
from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Awaitable, Callable, TypeVar

import msgspec

from ._core.request import RequestInfo
from .auth import Principal
from .config.schema import Deployment
from .errors import GatewayError, upstream_timeout
from .gateway import CONNECT_TIMEOUT, Gateway
from .providers.anthropic import AnthropicProvider
from .providers.anthropic.stream import messages_response_usage
from .providers.base import Provider, StreamDecoder, UpstreamRequest, UpstreamResponse
from .providers.openai_compat import parse_json_object
from .router.execute import execute
from .router.fallbacks import ROUTER_BODY_FIELDS, plan_for, take_request_fallbacks
from .router.router import Lease
from .timelimit import time_limit
from .observability.attempts import UpstreamAttempt, begin_attempt
from .usage import UsageRecord

MAX_ERROR_BODY = 1024 * 1024
T = TypeVar("T")


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
    admission: object | None = None  # governance: the budget/rate-limit ticket this call holds (issue 5)
    # Observability (issue 6): each upstream attempt's timeline (trace spans, error metrics),
    # and the final response when message logging is opted in.
    attempt_log: list[UpstreamAttempt] = field(default_factory=list)
    completion: dict | None = None
    request_info: RequestInfo | None = None  # what validation extracted (model, limits, the prompt to count)

    def __post_init__(self) -> None:
        self.record = UsageRecord(
            ts=time.time(), request_id=self.request_id, endpoint=self.endpoint, key_hash=self.principal.key_hash,
            model_group=self.model_group, stream=self.stream,
        )

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000.0


def _new_id_source() -> None:
    global _ID_PREFIX, _id_counter
    _ID_PREFIX = "req_" + os.urandom(8).hex()  # per worker: ids stay unique across workers and restarts
    _id_counter = itertools.count(int.from_bytes(os.urandom(4), "big"))


_new_id_source()
os.register_at_fork(after_in_child=_new_id_source)  # a forked worker must not repeat its parent's ids


def new_request_id(client_value: str | None) -> str:
    """The client's ``x-request-id`` if it is sane, else a new one (32 hex digits, as uuid4().hex).

    A random per-worker prefix and a counter: unique without a getrandom() syscall per request."""
    if client_value and len(client_value) <= 200 and client_value.isprintable():
        return client_value
    return f"{_ID_PREFIX}{next(_id_counter) & 0xFFFFFFFFFFFFFFFF:016x}"


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

    Its "chunks" are raw byte strings. Bytes are held back until the first content event,
    so that an error before it (an ``error`` event, a truncated stream) can still fail over
    invisibly. After that, an in-band error has already reached the client in its own
    format, so it is raised marked ``already_sent`` (recorded, not resent).
    """

    __slots__ = ("inner", "_held", "_committed")

    CONTENT_EVENT = b"content_block_delta"

    def __init__(self, inner) -> None:  # noqa: ANN001 - provider-specific relay decoder
        self.inner = inner
        self._held: list[bytes] = []
        self._committed = False

    @property
    def usage(self) -> dict | None:
        return self.inner.usage

    def _error(self, already_sent: bool) -> GatewayError | None:
        error = getattr(self.inner, "error", None)
        if error is None:
            return None
        err = error if isinstance(error, GatewayError) else GatewayError(
            502, str(error), "api_error", None, "upstream_stream_error", retryable=True)
        err.already_sent = already_sent  # type: ignore[attr-defined]
        return err

    def feed(self, data: bytes) -> list:
        out = self.inner.feed(data)
        if self._committed:
            return [out] if out else []
        self._held.append(out)
        err = self._error(already_sent=False)
        if err is not None:
            raise err
        held = b"".join(self._held)  # small: only what precedes the first content event
        self._held = [held]
        if self.CONTENT_EVENT in held or getattr(self.inner, "done", False):
            self._committed = True
            self._held = []
            return [held]
        return []

    def close(self) -> list:
        self.inner.close()
        err = self._error(already_sent=self._committed)
        if err is not None:
            raise err
        if self._held:
            self._committed = True
            held, self._held = b"".join(self._held), []
            return [held]
        return []


async def _send(gw: Gateway, provider: Provider, dep: Deployment, call: Call, attempts: "_AttemptLog",
                read_timeout: float, wait: str = "headers") -> UpstreamResponse:
    """One upstream attempt up to the response headers (and what ``wait`` names: see
    ``Transport.send``); an error status becomes a GatewayError."""
    request = _build_request(provider, dep, call)
    attempts.begin(dep)
    gw.observer.while_upstream_waits()  # perf: earlier requests' metrics and logs fill this wait
    response = await gw.transport_for(provider).send(request, connect_timeout=min(CONNECT_TIMEOUT, read_timeout),
                                                      read_timeout=read_timeout, wait=wait)
    if response.status >= 400:
        try:
            data = await response.read()
        finally:
            response.close()
        raise provider.error(response.status, response.headers, data[:MAX_ERROR_BODY])
    return response


def _note_deployment(call: Call, dep: Deployment | None = None) -> None:
    """What happened, for the client: ``x-fastgw-deployment`` / ``-attempts`` / ``-fallback``."""
    record = call.record
    deployment = dep.id if dep is not None else record.deployment_id
    if deployment:
        call.response_headers["x-fastgw-deployment"] = deployment
    call.response_headers["x-fastgw-attempts"] = str(record.attempts)
    if record.fallback:
        call.response_headers["x-fastgw-fallback"] = record.fallback


@dataclass(slots=True)
class _AttemptLog:
    """Accounts for every attempt: ``call.record`` describes the current one.

    When another attempt follows a failed one, the failed one is written as its own row
    (``retried`` set, ``attempts`` = its ordinal); the request's own row (written by the
    route) is the last attempt's and carries the total ``attempts``.
    """

    gw: Gateway
    call: Call
    failed: UsageRecord | None = None
    started: float = 0.0

    def begin(self, dep: Deployment) -> None:
        if self.failed is not None:
            self.gw.usage_log.record(self.failed)
            self.failed = None
        record = self.call.record
        record.attempts += 1
        record.deployment_id = dep.id
        record.provider = dep.provider
        record.upstream_model = dep.model
        record.ttft_ms = None
        self.started = time.perf_counter()
        begin_attempt(self.call.attempt_log, dep.id, dep.provider, dep.model)

    def fail(self, err: GatewayError) -> None:
        record = self.call.record
        if self.started:  # it reached (or tried to reach) an upstream
            self.call.attempt_log[-1].fail(err)
            self.failed = msgspec.structs.replace(
                record, status=err.status, error_type=err.code or err.type, retried=True,
                latency_ms=(time.perf_counter() - self.started) * 1000.0)
        self.started = 0.0


async def _routed(gw: Gateway, call: Call, attempt: Callable[..., Awaitable[T]]) -> T:
    """Run ``attempt`` through the router: retries, fallbacks, headers on success and error."""
    router = gw.router
    overrides = take_request_fallbacks(call.body, call.model_group, router.groups)
    if call.openai_body is not None:
        for name in ROUTER_BODY_FIELDS:
            call.openai_body.pop(name, None)
    plan = plan_for(router.settings, call.model_group, overrides)
    attempts = _AttemptLog(gw, call)

    async def one(dep: Deployment, lease: Lease, budget: float) -> T:
        try:
            return await attempt(gw, call, dep, lease, budget, attempts)
        except GatewayError as err:
            attempts.fail(err)
            raise

    def on_fallback(group: str) -> None:
        call.record.fallback = group

    try:
        return await execute(router, call.model_group, call.stream, plan, one,
                             call.started + router.request_timeout(), on_fallback)
    except GatewayError as err:
        _note_deployment(call)
        err.headers.update(call.response_headers)
        raise


async def _complete_attempt(gw: Gateway, call: Call, dep: Deployment, lease: Lease, budget: float,
                            attempts: _AttemptLog) -> dict:
    provider = gw.providers[dep.provider]
    timeout = min(gw.router.attempt_timeout(dep), budget)
    try:
        with time_limit(timeout):
            response = await _send(gw, provider, dep, call, attempts, timeout, wait="whole_body")
            try:
                data = await response.read()
            finally:
                response.close()
    except TimeoutError:
        raise upstream_timeout(f"deployment {dep.id} did not answer within {timeout:g}s") from None
    result, usage = _parse_response(provider, dep, call, data)
    call.record.set_usage(usage)
    lease.succeed(call.record.prompt_tokens + call.record.completion_tokens)
    _note_deployment(call, dep)
    return result


async def complete(gw: Gateway, call: Call) -> dict:
    return await _routed(gw, call, _complete_attempt)


@dataclass(slots=True)
class OpenStream:
    """An upstream stream read up to its first content chunk; not yet committed to the client.

    ``finish`` (or ``close``) must be called once the relay is done: it releases the
    connection and tells the router how the deployment did.
    """

    deployment: Deployment
    response: UpstreamResponse
    decoder: StreamDecoder
    first_chunks: list[dict]
    rest: AsyncIterator[bytes]
    finished: bool  # the body already ended while looking for the first chunk
    lease: Lease | None = None
    idle_timeout: float | None = None  # longest silence between upstream chunks once relayed
    deadline: float | None = None  # perf_counter() time the whole stream must end by
    pending: bytes = b""  # bytes read but not yet decoded: the relay decodes them after the first send

    def finish(self, error: GatewayError | None, completed: bool, usage: dict | None = None) -> None:
        if self.lease is not None:
            tokens = int((usage or {}).get("total_tokens") or 0)
            if completed:
                self.lease.succeed(tokens, streamed=True)
            elif error is not None:
                self.lease.fail(error, tokens)
            else:
                self.lease.release()
        self.response.close()

    def close(self) -> None:
        self.finish(None, False)


# A stream is committed at its first chunk that carries content; role-only preambles are
# held back (up to this many chunks) so a failure right after them still fails over.
MAX_HELD_CHUNKS = 32
# A first read can hold many events (a fast upstream, or a whole buffered answer): decode it
# this many bytes at a time until the stream commits, so the first chunk goes out without
# waiting for the rest to be decoded and re-encoded (time to first byte). Decoders take any
# boundaries, so the split is invisible to them.
FIRST_SLICE = 512


def _has_content(chunk: object) -> bool:
    if not isinstance(chunk, dict):
        return True  # raw pass-through bytes: cannot tell, commit
    choices = chunk.get("choices")
    if not choices:
        return bool(chunk.get("usage"))
    for choice in choices:
        if not isinstance(choice, dict):
            return True
        if choice.get("finish_reason") or choice.get("text"):
            return True
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for key, value in delta.items():
                if key != "role" and value not in (None, "", [], {}):
                    return True
    return False


async def _stream_attempt(gw: Gateway, call: Call, dep: Deployment, lease: Lease, budget: float,
                          attempts: _AttemptLog) -> OpenStream:
    router = gw.router
    provider = gw.providers[dep.provider]
    first_token = min(router.first_token_timeout(dep), budget)
    idle = router.idle_timeout(dep)
    response: UpstreamResponse | None = None
    chunks: list[dict] = []
    finished = False
    try:
        with time_limit(first_token):
            # The transport's own read timeout is only a backstop behind these two timers.
            response = await _send(gw, provider, dep, call, attempts, max(first_token, idle) + 1.0,
                                   wait="first_bytes")
            decoder = _stream_decoder(provider, dep, call)
            body = response.iter_chunks().__aiter__()
            committed = False
            pending = b""
            while not committed and len(chunks) < MAX_HELD_CHUNKS:
                if pending:
                    data, pending = pending, b""
                else:
                    try:
                        data = await body.__anext__()
                    except StopAsyncIteration:
                        chunks.extend(decoder.close())
                        finished = True
                        break
                if len(data) > FIRST_SLICE:
                    data, pending = data[:FIRST_SLICE], data[FIRST_SLICE:]
                new = decoder.feed(data)
                if new:
                    chunks.extend(new)
                    committed = any(_has_content(c) for c in new)
    except TimeoutError:
        if response is not None:
            response.close()
        raise upstream_timeout(f"deployment {dep.id} sent no first token within {first_token:g}s") from None
    except BaseException:
        if response is not None:
            response.close()
        raise
    lease.first_token()
    call.record.ttft_ms = call.elapsed_ms()
    _note_deployment(call, dep)
    deadline = call.started + router.settings.timeout if router.settings.timeout else None
    return OpenStream(dep, response, decoder, chunks, body, finished, lease, idle, deadline, pending)


async def open_stream(gw: Gateway, call: Call) -> OpenStream:
    return await _routed(gw, call, _stream_attempt)


def finish_record(gw: Gateway, call: Call, status: int, error: GatewayError | None = None,
                  error_type: str | None = None) -> None:
    close_record(gw, call, status, error, error_type)
    account(gw, call)


def close_record(gw: Gateway, call: Call, status: int, error: GatewayError | None = None,
                 error_type: str | None = None) -> None:
    """The call's outcome and cost: what its response headers must carry (``x-fastgw-cost``)."""
    record = call.record
    record.status = status
    record.latency_ms = call.elapsed_ms()
    if error is not None:
        record.error_type = error.code or error.type
    if error_type is not None:
        record.error_type = error_type
    gw.governance.price(call)


def account(gw: Gateway, call: Call) -> None:
    """After ``close_record``, once per call: the budget reservation becomes the actual cost,
    the usage row is queued, and metrics, logs and traces follow (fastgw/observability).

    A non-streamed response runs this right after its bytes are written (``after_send``):
    at c=1 the client is then already reading while the gateway does it."""
    gw.governance.settle(call)
    gw.usage_log.record(call.record)
    gw.observer.observe_soon(call)


def account_failure(gw: Gateway, endpoint: str, request_id: str, call: Call | None, err: GatewayError) -> None:
    """Every route's error path: a usage row if a provider was tried, else metrics and the
    access log only; either way the budget reservation is released."""
    if call is not None and call.record.attempts:
        finish_record(gw, call, err.status, err)
    else:
        gw.observer.rejected(endpoint, request_id, call, err)
    gw.governance.release(call)


ChunkEncoder = Callable[[dict], bytes]
