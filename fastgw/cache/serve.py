"""The cache's steps in a route: plan, serve a hit, keep the answer.

``begin`` runs before the upstream call (it also strips the body's ``cache`` object),
``serve_hit`` answers from the cache (JSON, or SSE for a streamed request) and accounts
for it like any request (status 200, ``cache_hit``, no upstream attempt), ``keep``
stores a non-streamed answer, ``capture`` wraps a stream's encoder so a stream that
ends cleanly is stored; errors and truncated streams never reach the cache.
"""
from __future__ import annotations

import logging
from typing import Callable

from starlette.datastructures import Headers
from starlette.responses import Response

from ..errors import GatewayError
from ..gateway import Gateway
from ..pipeline import Call, finish_record
from ..relay import OpenAIChunkEncoder, StreamEncoder
from ..responses import JSONBytesResponse
from .assemble import StreamAssembler
from .policy import CachePlan
from .synthesise import response_chunks

log = logging.getLogger("fastgw.cache")

HEADER = "x-fastgw-cache"


def begin(gw: Gateway, call: Call, headers: Headers) -> CachePlan | None:
    plan = gw.cache.plan(call.endpoint, call.model_group, call.body, headers.get("cache-control"))
    if plan is not None:
        call.response_headers[HEADER] = "miss"
    return plan


async def serve_hit(gw: Gateway, call: Call, plan: CachePlan | None) -> Response | None:
    if plan is None:
        return None
    entry = await gw.cache.lookup(plan, call.endpoint, call.model_group)
    if entry is None:
        return None
    response = dict(entry.response)
    response["model"] = call.model_group
    call.response_headers[HEADER] = "hit"
    call.record.cache_hit = True
    call.record.cost = 0.0  # priced: it cost nothing (governance must not re-price a cache hit)
    call.record.set_usage(response.get("usage") if isinstance(response.get("usage"), dict) else None)
    call.completion = response
    if call.stream:
        encoder = OpenAIChunkEncoder(call.model_group, call.include_usage)
        body = b"".join(encoder.feed(chunk) for chunk in response_chunks(call.endpoint, response)) + encoder.finish()
        call.record.ttft_ms = call.elapsed_ms()
        finish_record(gw, call, 200)
        return Response(body, 200, _headers(call, {"cache-control": "no-cache"}),
                        media_type="text/event-stream; charset=utf-8")
    finish_record(gw, call, 200)
    return JSONBytesResponse(response, 200, _headers(call))


def _headers(call: Call, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Read after ``finish_record``: accounting adds its own headers (``x-fastgw-cost``)."""
    return {"x-request-id": call.request_id, **call.response_headers, **(extra or {})}


async def keep(gw: Gateway, call: Call, plan: CachePlan | None, response: dict) -> None:
    """After a successful non-streamed call, before it is accounted for."""
    if gw.observer.wants_completion:
        call.completion = response
    if plan is not None:
        await gw.cache.store(plan, call.endpoint, response)


def capture(gw: Gateway, call: Call, plan: CachePlan | None, encoder: StreamEncoder) -> StreamEncoder:
    """Wrap a stream's encoder when someone needs the whole answer once it completes."""
    store = plan is not None and plan.write
    if not store and not gw.observer.wants_completion:
        return encoder

    def completed(response: dict) -> None:
        if gw.observer.wants_completion:
            call.completion = response
        if store and plan is not None:
            gw.cache.store_later(plan, call.endpoint, response)

    return CapturingEncoder(encoder, StreamAssembler(call.endpoint), completed)


class CapturingEncoder:
    """Passes chunks through to ``inner`` and assembles them; ``finish`` (a clean end only:
    errors go to ``error``) hands the assembled response to ``on_complete``."""

    __slots__ = ("inner", "assembler", "on_complete")

    def __init__(self, inner: StreamEncoder, assembler: StreamAssembler, on_complete: Callable[[dict], None]) -> None:
        self.inner = inner
        self.assembler = assembler
        self.on_complete = on_complete

    def feed(self, chunk: dict) -> bytes:
        self.assembler.add(chunk)
        return self.inner.feed(chunk)

    def finish(self) -> bytes:
        try:
            self.on_complete(self.assembler.result())
        except Exception:  # keeping a copy must never break the client's stream
            log.exception("could not keep the completed stream")
        return self.inner.finish()

    def error(self, err: GatewayError) -> bytes:
        return self.inner.error(err)
