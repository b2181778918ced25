"""Built-in mock provider, answered in-process, so a fresh install works with no keys.

It speaks OpenAI's wire format through an in-memory transport, so requests to it take
the same path as real upstream calls (framing, relay, accounting). Replies are
deterministic: the same request always gets the same answer.

``litellm_params``: ``mock_response`` (fixed reply text, or ``error:<status>`` to
answer with that upstream error), ``mock_chunks`` (content chunks per stream),
``mock_chunk_delay_ms`` (pause before each chunk).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time
from typing import TYPE_CHECKING, AsyncIterator, ClassVar, Mapping

import orjson

from ..errors import GatewayError
from .base import UpstreamRequest
from .common import first_text
from .openai_compat import OpenAICompatProvider

if TYPE_CHECKING:
    from ..config.schema import Deployment

_DEFAULT_EMBED_DIM = 16


def _approx_tokens(text: str) -> int:
    try:
        from ..tokens import count_text_tokens
    except ImportError:  # tokenizer not built into this checkout
        return max(1, (len(text) + 3) // 4)
    return count_text_tokens("gpt-4o", text).tokens


def reply_text(body: dict, fixed: str | None) -> str:
    if fixed:
        return fixed
    prompt = ""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            prompt = first_text(message.get("content"))
            break
    if not prompt and isinstance(body.get("prompt"), str):
        prompt = body["prompt"]
    prompt = " ".join(prompt.split())[:200]
    return f"This is a mock response from fastgw. You said: {prompt}" if prompt else "This is a mock response from fastgw."


def split_chunks(text: str, count: int | None) -> list[str]:
    words = text.split(" ")
    pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
    if count is None or count <= 0:
        return pieces
    return [pieces[i % len(pieces)] for i in range(count)]


class _MockResponse:
    def __init__(self, status: int, body: bytes | None = None, stream: AsyncIterator[bytes] | None = None,
                 content_type: str = "application/json") -> None:
        self.status = status
        self.headers: Mapping[str, str] = {"content-type": content_type}
        self._body = body
        self._stream = stream

    async def read(self) -> bytes:
        if self._body is not None:
            return self._body
        parts = [part async for part in self._stream]  # type: ignore[union-attr]
        return b"".join(parts)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        if self._body is not None:
            yield self._body
            return
        async for part in self._stream:  # type: ignore[union-attr]
            yield part

    def close(self) -> None:
        if self._stream is not None and hasattr(self._stream, "aclose"):
            # Closing the generator is what a socket close is for a real upstream.
            asyncio.ensure_future(self._stream.aclose())  # type: ignore[union-attr]


class MockTransport:
    async def send(self, request: UpstreamRequest, *, connect_timeout: float, read_timeout: float,
                   wait: str = "headers") -> _MockResponse:
        body = orjson.loads(request.body or b"{}")
        options = body.pop("_mock", {})
        fixed = options.get("response")
        if isinstance(fixed, str) and fixed.startswith("error:"):
            status = int(fixed.split(":", 1)[1] or 500)
            error = {"error": {"message": f"mock upstream error {status}", "type": "api_error", "param": None,
                               "code": "rate_limit_exceeded" if status == 429 else None}}
            return _MockResponse(status, orjson.dumps(error))
        path = request.url.rsplit("/", 1)[-1]
        if path == "embeddings":
            return _MockResponse(200, orjson.dumps(embeddings(body)))
        chat = path == "completions" and request.url.endswith("chat/completions")
        text = reply_text(body, fixed)
        prompt_tokens = _approx_tokens(orjson.dumps(body.get("messages") or body.get("prompt") or "").decode())
        if body.get("stream"):
            pieces = split_chunks(text, options.get("chunks"))
            delay = (options.get("chunk_delay_ms") or 0) / 1000.0
            return _MockResponse(200, stream=_stream(body, chat, pieces, prompt_tokens, delay),
                                 content_type="text/event-stream")
        completion_tokens = _approx_tokens(text)
        return _MockResponse(200, orjson.dumps(_complete(body, chat, text, prompt_tokens, completion_tokens)))


def _usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                      "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    }


def _request_id(body: dict, prefix: str) -> str:
    digest = hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
    return prefix + digest


def _complete(body: dict, chat: bool, text: str, prompt_tokens: int, completion_tokens: int) -> dict:
    n = body.get("n") or 1
    if chat:
        choices = [{"index": i, "message": {"role": "assistant", "content": text, "refusal": None, "annotations": []},
                    "logprobs": None, "finish_reason": "stop"} for i in range(n)]
        obj, prefix = "chat.completion", "chatcmpl-mock"
    else:
        choices = [{"index": i, "text": text, "logprobs": None, "finish_reason": "stop"} for i in range(n)]
        obj, prefix = "text_completion", "cmpl-mock"
    return {"id": _request_id(body, prefix), "object": obj, "created": int(time.time()), "model": body.get("model"),
            "choices": choices, "usage": _usage(prompt_tokens, completion_tokens * n),
            "system_fingerprint": "fp_fastgw_mock"}


async def _stream(body: dict, chat: bool, pieces: list[str], prompt_tokens: int, delay: float) -> AsyncIterator[bytes]:
    rid = _request_id(body, "chatcmpl-mock" if chat else "cmpl-mock")
    created = int(time.time())
    model = body.get("model")
    obj = "chat.completion.chunk" if chat else "text_completion"
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    usage_null = {"usage": None} if include_usage else {}

    def event(choices: list, **extra: object) -> bytes:
        chunk = {"id": rid, "object": obj, "created": created, "model": model,
                 "system_fingerprint": "fp_fastgw_mock", "choices": choices, **extra}
        return b"data: " + orjson.dumps(chunk) + b"\n\n"

    if chat:
        yield event([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                      "logprobs": None, "finish_reason": None}], **usage_null)
    completion_tokens = 0
    for piece in pieces:
        if delay:
            await asyncio.sleep(delay)
        completion_tokens += _approx_tokens(piece)
        if chat:
            choice = {"index": 0, "delta": {"content": piece}, "logprobs": None, "finish_reason": None}
        else:
            choice = {"index": 0, "text": piece, "logprobs": None, "finish_reason": None}
        yield event([choice], **usage_null)
    if chat:
        yield event([{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}], **usage_null)
    else:
        yield event([{"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}], **usage_null)
    if include_usage:
        yield event([], usage=_usage(prompt_tokens, completion_tokens))
    yield b"data: [DONE]\n\n"


def embeddings(body: dict) -> dict:
    inputs = body.get("input")
    if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
        inputs = [inputs]
    dim = body.get("dimensions") or _DEFAULT_EMBED_DIM
    base64_out = body.get("encoding_format") == "base64"
    data = []
    total = 0
    for index, item in enumerate(inputs or []):
        text = item if isinstance(item, str) else " ".join(map(str, item))
        total += _approx_tokens(text) if isinstance(item, str) else len(item)
        vector = _vector(text, dim)
        embedding: object = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode() if base64_out else vector
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {"object": "list", "data": data, "model": body.get("model"),
            "usage": {"prompt_tokens": total, "total_tokens": total}}


def _vector(text: str, dim: int) -> list[float]:
    """A unit vector derived from the text's hash: stable across runs and machines."""
    out: list[float] = []
    counter = 0
    while len(out) < dim:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        out.extend((b - 127.5) / 127.5 for b in digest)
        counter += 1
    out = out[:dim]
    norm = sum(v * v for v in out) ** 0.5 or 1.0
    return [round(v / norm, 6) for v in out]


class MockProvider(OpenAICompatProvider):
    name: ClassVar[str] = "mock"
    default_api_base: ClassVar[str | None] = "mock://fastgw"
    local_transport: ClassVar[MockTransport] = MockTransport()

    def prepare_body(self, dep: "Deployment", body: dict, stream: bool) -> dict:
        body = super().prepare_body(dep, body, stream)
        params = dep.params
        body["_mock"] = {"response": params.mock_response, "chunks": params.mock_chunks,
                         "chunk_delay_ms": params.mock_chunk_delay_ms}
        return body

    def embeddings_request(self, dep: "Deployment", body: dict) -> UpstreamRequest:
        request = super().embeddings_request(dep, body)
        if dep.params.mock_response and dep.params.mock_response.startswith("error:"):
            data = orjson.loads(request.body or b"{}")
            data["_mock"] = {"response": dep.params.mock_response}
            request.body = orjson.dumps(data)
        return request

    def auth_headers(self, dep: "Deployment") -> dict[str, str]:
        return {}


__all__ = ["MockProvider", "MockTransport", "GatewayError"]
