"""A stream whose whole body arrives in one read still sends its first chunk first.

An upstream that answers fast (or a buffered one) hands the gateway all of a stream's
events in a single read. The gateway must send the first content chunk on its own, before
decoding and re-encoding the rest, or the client's time to first byte grows with the
length of the answer. Each ASGI body message is one HTTP/1.1 chunk on the wire, so the
test reads the raw chunked framing.
"""
from __future__ import annotations

import json
import socket
import threading

import orjson
import pytest

MASTER = "sk-fastgw-master-test"
WORDS = [f" word{i}" for i in range(300)]


def stream_body() -> bytes:
    base = {"id": "chatcmpl-burst", "object": "chat.completion.chunk", "created": 1735689600,
            "model": "gpt-4o-mini-2024-07-18", "system_fingerprint": "fp_x"}
    events = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "logprobs": None, "finish_reason": None}]}]
    events += [{**base, "choices": [{"index": 0, "delta": {"content": w}, "logprobs": None, "finish_reason": None}]}
               for w in WORDS]
    events.append({**base, "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}]})
    events.append({**base, "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": len(WORDS),
                                                    "total_tokens": 5 + len(WORDS)}})
    return b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events) + b"data: [DONE]\n\n"


class BurstUpstream:
    """Answers every request with the whole SSE body in one write (Content-Length framing)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.body = stream_body()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                conn.sendall(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: "
                             + str(len(self.body)).encode() + b"\r\n\r\n" + self.body)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def burst_gw(start_gateway):
    upstream = BurstUpstream()
    gw = start_gateway({"model_list": [{"model_name": "burst", "litellm_params": {
        "model": "openai/gpt-4o-mini", "api_base": f"http://127.0.0.1:{upstream.port}/v1", "api_key": "sk-up"}}]},
        key=MASTER)
    yield gw
    upstream.close()


def http_chunks(raw: bytes) -> list[bytes]:
    """The body of a chunked HTTP/1.1 response, one item per chunk as framed on the wire."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head.lower(), head
    out = []
    while True:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return out
        out.append(rest[:size])
        rest = rest[size + 2:]


def test_first_chunk_is_sent_before_the_rest_is_decoded(burst_gw):
    body = json.dumps({"model": "burst", "stream": True, "stream_options": {"include_usage": True},
                       "messages": [{"role": "user", "content": "x"}]}).encode()
    request = (f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {MASTER}\r\n"
               f"content-type: application/json\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n").encode()
    raw = b""
    with socket.create_connection(("127.0.0.1", burst_gw.port), timeout=20) as sock:
        sock.sendall(request + body)
        while data := sock.recv(65536):
            raw += data
    chunks = http_chunks(raw)
    first_events = [e for e in chunks[0].split(b"\n\n") if e.startswith(b"data: ")]
    assert 1 <= len(first_events) <= 3, f"the first write carried {len(first_events)} events"
    events = [orjson.loads(e[6:]) for e in b"".join(chunks).split(b"\n\n") if e.startswith(b"data: {")]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"])
    assert text == "".join(WORDS), "nothing lost or reordered by the split"
    assert events[-1]["usage"]["completion_tokens"] == len(WORDS)
    assert all(e["model"] == "burst" for e in events)
    assert b"".join(chunks).endswith(b"data: [DONE]\n\n")
