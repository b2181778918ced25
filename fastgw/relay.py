"""Relay an upstream stream to the client as SSE, accounting for it however it ends.

A stream ends one of three ways, and each is recorded: complete (the encoder's
terminator is sent), failed after commit (an explicit error event, never a clean end
that looks like success), or abandoned by the client (the upstream call is cancelled).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable, Protocol

import orjson
from starlette.types import Receive, Scope, Send

from ._core.server import latin1_headers
from .errors import GatewayError, upstream_timeout
from .gateway import Gateway
from .pipeline import Call, OpenStream, finish_record
from .router.watchdog import DEADLINE, StreamWatchdog

log = logging.getLogger("fastgw.relay")

RELAY_SLICE = 4096  # upstream bytes decoded at a time (see SSERelayResponse._encode)


class StreamEncoder(Protocol):
    def feed(self, chunk: dict) -> bytes: ...

    def finish(self) -> bytes: ...

    def error(self, err: GatewayError) -> bytes: ...


class OpenAIChunkEncoder:
    """Chat/text completion chunks as OpenAI sends them, under the client's model name."""

    __slots__ = ("model", "include_usage", "on_usage")

    def __init__(self, model: str, include_usage: bool, on_usage: Callable[[dict], dict] | None = None) -> None:
        self.model = model
        self.include_usage = include_usage
        self.on_usage = on_usage  # governance: adds ``cost`` to the usage chunk the client asked for

    def feed(self, chunk: dict) -> bytes:
        if "model" in chunk:
            chunk["model"] = self.model
        if not self.include_usage:
            if not chunk.get("choices") and chunk.get("usage"):
                return b""  # the usage chunk the gateway asked for on its own behalf
            chunk.pop("usage", None)
        elif self.on_usage is not None and not chunk.get("choices") and isinstance(chunk.get("usage"), dict):
            chunk = {**chunk, "usage": self.on_usage(chunk["usage"])}  # a copy: cached chunks stay as sent upstream
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    def finish(self) -> bytes:
        return b"data: [DONE]\n\n"

    def error(self, err: GatewayError) -> bytes:
        return b"data: " + err.to_json() + b"\n\n"


class SSERelayResponse:
    """ASGI response streaming ``stream`` through ``encoder``; watches for client disconnect."""

    def __init__(self, gw: Gateway, call: Call, stream: OpenStream, encoder: StreamEncoder) -> None:
        self.gw = gw
        self.call = call
        self.stream = stream
        self.encoder = encoder
        self.relayed = 0  # chunks sent to the client: the completion-token estimate if the stream breaks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        call = self.call
        headers = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache"),
                   (b"x-request-id", call.request_id.encode())]
        headers += latin1_headers(call.response_headers)
        outcome: list = [None]  # (status, error, error_type) once known
        # perf: the relay runs in this task; a watcher cancels it if the client goes away
        # (one extra task per stream instead of two plus asyncio.wait). It is made once the
        # first bytes are out (``_relay``): a task costs ~10k instructions, and it could not
        # run before the relay first waits anyway.
        watch = _DisconnectWatch(asyncio.current_task(), receive)  # type: ignore[arg-type]
        try:
            await self._relay(send, headers, outcome, watch)
            watch.relaying = False
        except asyncio.CancelledError:
            watch.relaying = False
            if not watch.gone:
                raise  # cancelled by the server (shutdown), not by a disconnect
            watch.task.uncancel()
            if outcome[0] is None:
                outcome[0] = (499, None, "client_disconnected")
        finally:
            watch.stop()
            status, error, error_type = outcome[0] or (499, None, "client_disconnected")
            usage = self.stream.decoder.usage
            if usage is None and error is not None:
                usage = _partial_usage(call, self.relayed)
            self.stream.finish(error, status == 200 and error is None, usage)
            call.record.set_usage(usage)
            finish_record(self.gw, call, status, error, error_type)

    def _encode(self, data: bytes) -> bytes:
        """The client's bytes for one upstream read, decoded ``RELAY_SLICE`` bytes at a time.

        A slow gateway reads many events at once (up to the client's high-water mark and a
        socket read beyond it); decoded all together they took ~5x their size in dicts, per
        stream, at the moment the gateway had the most streams open. A slice at a time, only
        one slice's dicts are alive; the output is still one write per read."""
        decoder, encoder = self.stream.decoder, self.encoder
        parts: list[bytes] = []
        for start in range(0, len(data), RELAY_SLICE):  # a read within one slice is not copied
            parts += [encoder.feed(c) for c in decoder.feed(data[start:start + RELAY_SLICE])]
        self.relayed += len(parts)  # counted once all decoded: an error in a later slice sends none of them
        return b"".join(parts)

    async def _relay(self, send: Send, headers: list, outcome: list, watch: "_DisconnectWatch") -> None:
        encoder = self.encoder
        stream = self.stream
        decoder = stream.decoder
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        watchdog: StreamWatchdog | None = None
        try:
            first, stream.first_chunks = stream.first_chunks, []
            self.relayed = len(first)
            out = b"".join([encoder.feed(c) for c in first])
            first = []
            if out:
                await send({"type": "http.response.body", "body": out, "more_body": True})
                out = b""
            watch.start()  # after the first bytes (time to first byte), before any wait
            watchdog = _watchdog(stream)
            if stream.pending:  # the rest of the read that carried the first chunk
                out = self._encode(stream.pending)
                stream.pending = b""
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
                out = b""
            if not stream.finished:
                if watchdog is not None:
                    watchdog.start()
                try:
                    async for data in stream.rest:
                        if watchdog is not None:
                            watchdog.pause()
                        out = self._encode(data)
                        data = b""  # memory: nothing of this read stays alive while the next is awaited
                        if out:
                            await send({"type": "http.response.body", "body": out, "more_body": True})
                            out = b""
                        if watchdog is not None:
                            watchdog.touch()
                except asyncio.CancelledError:
                    if watchdog is None or watchdog.fired is None:
                        raise
                    asyncio.current_task().uncancel()  # type: ignore[union-attr]
                    raise _stream_timeout(stream, watchdog.fired) from None
                finally:
                    if watchdog is not None:
                        watchdog.stop()
                tail = decoder.close()
                out = b"".join([encoder.feed(c) for c in tail])
                if out:
                    await send({"type": "http.response.body", "body": out, "more_body": True})
        except GatewayError as err:
            outcome[0] = (200, err, None)
            await send({"type": "http.response.body", "body": encoder.error(err), "more_body": False})
            return
        except (ConnectionError, OSError):
            raise  # the client went away: recorded as a disconnect
        except Exception as exc:
            log.exception("stream relay failed")
            err = GatewayError(502, f"stream relay failed ({type(exc).__name__})", "api_error", None, "relay_error")
            outcome[0] = (200, err, None)
            await send({"type": "http.response.body", "body": encoder.error(err), "more_body": False})
            return
        outcome[0] = (200, None, None)
        await send({"type": "http.response.body", "body": encoder.finish(), "more_body": False})


def _watchdog(stream: OpenStream) -> StreamWatchdog | None:
    if stream.idle_timeout is None and stream.deadline is None:
        return None
    loop_deadline = None
    if stream.deadline is not None:
        loop_deadline = asyncio.get_running_loop().time() + (stream.deadline - time.perf_counter())
    return StreamWatchdog(stream.idle_timeout or float("inf"), loop_deadline)


def _stream_timeout(stream: OpenStream, reason: str) -> GatewayError:
    if reason == DEADLINE:
        message = f"deployment {stream.deployment.id}: the stream did not finish within the request timeout"
    else:
        message = f"deployment {stream.deployment.id} sent nothing for {stream.idle_timeout:g}s mid-stream"
    return upstream_timeout(message)


def _partial_usage(call: Call, relayed: int) -> dict | None:
    """The upstream never reported usage for a broken stream: estimate it (prompt counted
    locally, completion as one token per relayed chunk) so the row is not zero."""
    if not relayed:
        return None
    prompt = 0
    messages = call.body.get("messages") if call.openai_body is None else call.openai_body.get("messages")
    if isinstance(messages, list):
        try:
            from .tokens import count_message_tokens

            prompt = count_message_tokens(call.record.upstream_model or "gpt-4o", messages).tokens
        except Exception:  # the estimate is best effort; the error row is written regardless
            prompt = 0
    return {"prompt_tokens": prompt, "completion_tokens": relayed, "total_tokens": prompt + relayed}


class _DisconnectWatch:
    """Cancels the relaying task when the client disconnects (and says so in ``gone``)."""

    __slots__ = ("task", "receive", "watcher", "relaying", "gone")

    def __init__(self, task: asyncio.Task, receive: Receive) -> None:
        self.task = task
        self.receive = receive
        self.watcher: asyncio.Future | None = None
        self.relaying = True
        self.gone = False

    def start(self) -> None:
        if self.watcher is None:
            self.watcher = asyncio.ensure_future(self.run(self.receive))

    def stop(self) -> None:
        """Let go of the watcher as it is cancelled: the cancelled task keeps the exception,
        whose traceback holds ``run``'s frame and so this object; holding the task here too
        made a cycle per stream, left to the collector (5,000 slow streams: RSS +2 MB/s up
        to 500 MB with the gen-0 threshold of fastgw/tuning.py)."""
        watcher, self.watcher = self.watcher, None
        if watcher is not None:
            watcher.cancel()

    async def run(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if self.relaying:
                    self.gone = True
                    self.task.cancel()
                return
