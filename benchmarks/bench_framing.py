"""Throughput of the compiled framing decoders against a straightforward pure-Python parser.

Run: .venv/bin/python benchmarks/bench_framing.py [--quick]

The SSE case is the gateway's hottest path: every streamed token of an OpenAI-compatible
upstream passes through SSEDecoder.feed. The stream is 100 chat.completion.chunk events
(plus the usage chunk and [DONE]) shaped like transcripts/openai-chat-stream.sse, fed in
socket-sized reads and in 1-byte reads (the worst case a slow upstream can produce).
The EventStream section also records why the CRC-32 is an in-module table rather than
calls to zlib.crc32.
"""
from __future__ import annotations

import random
import re
import struct
import sys
import time
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from fastgw._core import framing  # noqa: E402
from fastgw._core.framing import EventStreamDecoder, NDJSONDecoder, SSEDecoder  # noqa: E402

TRANSCRIPTS = Path("/work/shared/reference/transcripts")


# ------------------------------------------------------------------------------------------
# Baseline: the pure-Python SSE parser one would write without the compiled core.
# ------------------------------------------------------------------------------------------

_EOL = re.compile(rb"\r\n|\r|\n")


class PySSEDecoder:
    """Straightforward pure-Python SSE parser (same semantics as SSEDecoder)."""

    def __init__(self) -> None:
        self._buf = b""
        self._skip_lf = False
        self._event: str | None = None
        self._data: list[bytes] | None = None

    def feed(self, data: bytes) -> list[tuple[str | None, bytes]]:
        if self._skip_lf and data[:1] == b"\n":
            data = data[1:]
        self._skip_lf = False
        buf = self._buf + data
        if buf.endswith(b"\r"):
            # The line is finished, but a following \n belongs to the same terminator.
            lines = _EOL.split(buf[:-1])
            self._buf = b""
            self._skip_lf = True
        else:
            lines = _EOL.split(buf)
            self._buf = lines.pop()
        out = []
        for line in lines:
            if not line:
                if self._data is not None:
                    out.append((self._event, b"\n".join(self._data)))
                self._event = None
                self._data = None
            elif line[0] == 0x3A:  # ':'
                continue
            else:
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    if self._data is None:
                        self._data = [value]
                    else:
                        self._data.append(value)
                elif name == b"event":
                    self._event = value.decode("utf-8", "replace") or None
        return out


# ------------------------------------------------------------------------------------------
# Inputs
# ------------------------------------------------------------------------------------------

def openai_stream(n_chunks: int = 100) -> bytes:
    """An OpenAI chat stream of ``n_chunks`` content deltas, framed as the API sends it."""
    base = {
        "id": "chatcmpl-Bx7kQ2mZr9VtLw3NfH8aYc1dE5pG",
        "object": "chat.completion.chunk",
        "created": 1735689600,
        "model": "gpt-4o-mini-2024-07-18",
        "service_tier": "default",
        "system_fingerprint": "fp_7a1d3c9e20",
    }
    rng = random.Random(0)
    words = ["The", " capital", " of", " France", " is", " Paris", ",", " a", " city", " of",
             " light", " and", " café", " culture", " — ", " known", " for", "\n", " art", "."]
    events = []
    first = dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": None},
                                 "logprobs": None, "finish_reason": None}], usage=None)
    events.append(first)
    for _ in range(n_chunks - 1):
        events.append(dict(base, choices=[{"index": 0, "delta": {"content": rng.choice(words)},
                                           "logprobs": None, "finish_reason": None}], usage=None))
    events.append(dict(base, choices=[{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
                       usage=None))
    events.append(dict(base, choices=[], usage={"prompt_tokens": 24, "completion_tokens": n_chunks,
                                                "total_tokens": 24 + n_chunks}))
    body = b"".join(b"data: " + orjson.dumps(e) + b"\n\n" for e in events)
    return body + b"data: [DONE]\n\n"


def socket_reads(data: bytes, seed: int = 1) -> list[bytes]:
    """Reads as a streaming HTTP client sees them: mostly one TCP segment's worth, unaligned."""
    rng = random.Random(seed)
    out, i = [], 0
    while i < len(data):
        n = rng.choice([rng.randint(40, 600), rng.randint(600, 1460), 4096])
        out.append(data[i : i + n])
        i += n
    return out


def one_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


# ------------------------------------------------------------------------------------------
# Timing
# ------------------------------------------------------------------------------------------

def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def run_decoder(cls, chunks, loops):
    def go():
        for _ in range(loops):
            dec = cls()
            feed = dec.feed
            for c in chunks:
                feed(c)
    return go


def report(label: str, nbytes: int, nevents: int, seconds: float, loops: int) -> float:
    per = seconds / loops
    mbs = nbytes / per / 1e6
    print(f"  {label:<34} {mbs:9.1f} MB/s {nevents / per:13,.0f} events/s {per * 1e6:10.1f} us/stream")
    return mbs


def bench_sse(quick: bool) -> None:
    body = openai_stream(100)
    reads = socket_reads(body)
    bytes1 = one_byte(body)
    expected = SSEDecoder().feed(body)
    for chunks in (reads, bytes1):
        got, py = [], []
        c_dec, p_dec = SSEDecoder(), PySSEDecoder()
        for c in chunks:
            got += c_dec.feed(c)
            py += p_dec.feed(c)
        assert got == expected == py, "decoders disagree"
    n_ev = len(expected)
    print(f"SSE: OpenAI stream, {n_ev} events, {len(body):,} bytes; "
          f"{len(reads)} socket reads (avg {len(body) // len(reads)} B), {len(bytes1):,} 1-byte reads")
    rep = 3 if quick else 7
    for name, chunks, loops in (("socket reads", reads, 20 if quick else 200),
                                ("1-byte reads", bytes1, 1 if quick else 5)):
        t_c = best_of(run_decoder(SSEDecoder, chunks, loops), rep)
        t_p = best_of(run_decoder(PySSEDecoder, chunks, loops), rep)
        c = report(f"SSEDecoder (Cython), {name}", len(body), n_ev, t_c, loops)
        p = report(f"pure-Python baseline, {name}", len(body), n_ev, t_p, loops)
        print(f"  -> {c / p:.1f}x faster")
    whole_loops = 50 if quick else 500
    t_c = best_of(run_decoder(SSEDecoder, [body], whole_loops), rep)
    t_p = best_of(run_decoder(PySSEDecoder, [body], whole_loops), rep)
    c = report("SSEDecoder (Cython), one feed", len(body), n_ev, t_c, whole_loops)
    p = report("pure-Python baseline, one feed", len(body), n_ev, t_p, whole_loops)
    print(f"  -> {c / p:.1f}x faster")


def bench_ndjson(quick: bool) -> None:
    body = (TRANSCRIPTS / "ollama-chat-stream.ndjson").read_bytes() * 20
    reads = socket_reads(body, 2)
    n_lines = len(NDJSONDecoder().feed(body))
    loops = 50 if quick else 500
    print(f"NDJSON: Ollama stream x20, {n_lines} lines, {len(body):,} bytes")
    report("NDJSONDecoder, socket reads", len(body), n_lines, best_of(run_decoder(NDJSONDecoder, reads, loops), 5), loops)


def _frame(payload: bytes) -> bytes:
    headers = b"\x0b:event-type\x07\x00\x05chunk"
    prelude = struct.pack(">II", 16 + len(headers) + len(payload), len(headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def bench_eventstream(quick: bool) -> None:
    body = b"".join((TRANSCRIPTS / name).read_bytes() for name in
                    ("bedrock-converse-stream.bin", "bedrock-converse-stream-tools.bin",
                     "bedrock-invoke-stream.bin")) * 5
    reads = socket_reads(body, 3)
    n_msgs = len(EventStreamDecoder().feed(body))
    loops = 30 if quick else 300
    print(f"EventStream: Bedrock transcripts x5, {n_msgs} messages, {len(body):,} bytes")
    report("EventStreamDecoder, socket reads", len(body), n_msgs,
           best_of(run_decoder(EventStreamDecoder, reads, loops), 5), loops)
    report("EventStreamDecoder, 1-byte reads", len(body), n_msgs,
           best_of(run_decoder(EventStreamDecoder, one_byte(body), 1), 3), 1)

    big = b"".join(
        _frame(bytes(random.Random(i).getrandbits(8) for _ in range(65536))) for i in range(16)
    )
    loops = 5 if quick else 30
    report("EventStreamDecoder, 64 KiB frames", len(big), 16,
           best_of(run_decoder(EventStreamDecoder, socket_reads(big, 4), loops), 5), loops)

    # CRC choice. Inside the decoder the table CRC is a plain C call; the zlib alternative
    # is two Python-level zlib.crc32 calls per message on memoryview slices. The decoder
    # uses the table below 1 KiB and zlib above (see framing.pyx).
    print("CRC-32 per message (prelude + message CRC), table in C vs zlib.crc32 via Python:")
    crc_c = framing._crc32
    for size in (137, 500, 4096, 65536):
        frame = bytes(random.Random(size).getrandbits(8) for _ in range(size))
        mv = memoryview(frame)
        n = 20000 if size <= 4096 else 2000
        if quick:
            n //= 10

        def zlib_way():
            for _ in range(n):
                c = zlib.crc32(mv[0:8])
                zlib.crc32(mv[8 : size - 4], c)

        def table_way():
            for _ in range(n):
                crc_c(frame)

        def call_overhead():  # the Python call cost the real decoder does not pay
            for _ in range(n):
                crc_c(b"")

        t_z = best_of(zlib_way, 5) / n
        t_t = max(best_of(table_way, 5) / n - best_of(call_overhead, 5) / n, 1e-12)
        print(f"  {size:6d} B: zlib.crc32 x2 {t_z * 1e9:8.0f} ns   table (C call) {t_t * 1e9:8.0f} ns"
              f"   ({size / t_t / 1e9:.2f} GB/s)")


def main() -> None:
    quick = "--quick" in sys.argv
    print(f"Python {sys.version.split()[0]}")
    bench_sse(quick)
    bench_ndjson(quick)
    bench_eventstream(quick)


if __name__ == "__main__":
    main()
