"""Tests for the compiled stream framing decoders (fastgw._core.framing).

The golden transcripts are the real wire bodies the adapters will see; every decoder must
give the same result however the socket happens to chunk them.
"""
from __future__ import annotations

import base64
import json
import random
import struct
import time
import uuid
import zlib
from pathlib import Path

import orjson
import pytest

from fastgw._core import framing
from fastgw._core.framing import (
    EventStreamDecoder,
    EventStreamError,
    EventStreamMessage,
    NDJSONDecoder,
    SSEDecoder,
)

TRANSCRIPTS = Path("/work/shared/reference/transcripts")
if not TRANSCRIPTS.is_dir():  # pragma: no cover - repo-local copy, if the project vendors one
    TRANSCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "transcripts"

SSE_FILES = sorted(TRANSCRIPTS.glob("*.sse"))
NDJSON_FILES = sorted(TRANSCRIPTS.glob("*.ndjson"))
BIN_FILES = sorted(TRANSCRIPTS.glob("*.bin"))

pytestmark = pytest.mark.skipif(not SSE_FILES, reason="transcripts not available")


# ------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------

def feed_chunks(decoder, chunks):
    out = []
    for chunk in chunks:
        out.extend(decoder.feed(chunk))
    return out


def one_byte(data: bytes):
    return [data[i : i + 1] for i in range(len(data))]


def random_split(data: bytes, rng: random.Random, max_piece: int = 64):
    pieces, i = [], 0
    while i < len(data):
        n = rng.randint(0, max_piece)  # 0 exercises empty feeds
        pieces.append(data[i : i + n])
        i += n
    return pieces


def sse_decode(data: bytes, chunks=None):
    dec = SSEDecoder()
    events = feed_chunks(dec, chunks if chunks is not None else [data])
    assert dec.close() == []
    return events, dec.pending


def to_lf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def reference_sse(data: bytes):
    """Independent, obviously-correct (slow) WHATWG parser for differential checks."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    lines, cur, i = [], bytearray(), 0
    complete = []
    while i < len(data):
        c = data[i : i + 1]
        if c == b"\r":
            complete.append(bytes(cur))
            cur = bytearray()
            if data[i + 1 : i + 2] == b"\n":
                i += 1
        elif c == b"\n":
            complete.append(bytes(cur))
            cur = bytearray()
        else:
            cur += c
        i += 1
    lines = complete
    events, name, buf = [], None, None
    for line in lines:
        if line == b"":
            if buf is not None:
                events.append((name, b"\n".join(buf)))
            name, buf = None, None
            continue
        if line.startswith(b":"):
            continue
        field, sep, value = line.partition(b":")
        if sep and value.startswith(b" "):
            value = value[1:]
        if field == b"data":
            buf = (buf or []) + [value]
        elif field == b"event":
            name = value.decode("utf-8", "replace") or None
    return events


# ------------------------------------------------------------------------------------------
# SSE: transcripts
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_sse_transcript_any_chunking(path):
    data = path.read_bytes()
    whole, pending = sse_decode(data)
    assert whole, "every transcript has events"
    assert not pending
    assert whole == reference_sse(data)

    assert sse_decode(data, one_byte(data)) == (whole, False)
    rng = random.Random(f"sse-{path.name}")
    for _ in range(200):
        assert sse_decode(data, random_split(data, rng)) == (whole, False)

    lf = to_lf(data)
    for term in (b"\n", b"\r\n", b"\r"):
        converted = lf.replace(b"\n", term)
        assert sse_decode(converted) == (whole, False)
        assert sse_decode(converted, one_byte(converted)) == (whole, False)
        for _ in range(30):
            assert sse_decode(converted, random_split(converted, rng, 16)) == (whole, False)


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_sse_transcript_data_is_json(path):
    events, _ = sse_decode(path.read_bytes())
    for _name, data in events:
        if data != b"[DONE]":
            orjson.loads(data)


@pytest.mark.parametrize("path", SSE_FILES, ids=lambda p: p.name)
def test_sse_truncation_at_every_offset(path):
    """A cut anywhere yields a prefix of the events; pending is True unless cut on a boundary."""
    data = path.read_bytes()
    whole, _ = sse_decode(data)
    lf = to_lf(data)
    if lf != data:  # boundaries below are computed on LF text; the CRLF case is covered above
        data, whole = lf, sse_decode(lf)[0]
    boundaries = {0} | {k for k in range(2, len(data) + 1) if data[k - 2 : k] == b"\n\n"}
    for k in range(len(data) + 1):
        events, pending = sse_decode(data[:k])
        assert events == whole[: len(events)]
        assert pending == (k not in boundaries), k


def test_openai_chat_stream_contents():
    events, _ = sse_decode((TRANSCRIPTS / "openai-chat-stream.sse").read_bytes())
    assert len(events) == 11
    assert events[-1] == (None, b"[DONE]")
    assert all(name is None for name, _ in events)
    text = "".join(
        c["delta"].get("content") or ""
        for _, d in events[:-1]
        for c in orjson.loads(d)["choices"]
    )
    assert text.startswith("The")
    assert orjson.loads(events[-2][1])["usage"]["total_tokens"] > 0


def test_openai_midstream_error_has_no_done():
    events, pending = sse_decode((TRANSCRIPTS / "openai-chat-stream-midstream-error.sse").read_bytes())
    assert not pending
    assert b"[DONE]" not in [d for _, d in events]
    assert "error" in orjson.loads(events[-1][1])


def test_anthropic_events_are_named():
    events, _ = sse_decode((TRANSCRIPTS / "anthropic-messages-stream.sse").read_bytes())
    names = [n for n, _ in events]
    assert names[0] == "message_start" and names[-1] == "message_stop"
    assert "ping" in names and "content_block_delta" in names
    for name, data in events:
        assert orjson.loads(data)["type"] == name


def test_anthropic_error_event():
    events, _ = sse_decode((TRANSCRIPTS / "anthropic-messages-stream-error.sse").read_bytes())
    assert events[-1][0] == "error"
    assert orjson.loads(events[-1][1])["error"]["type"] == "overloaded_error"


def test_named_events_match_payload_type():
    for name in ("cohere-chat-stream.sse", "cohere-chat-tools-stream.sse", "openai-responses-stream.sse",
                 "anthropic-messages-thinking-stream.sse", "anthropic-messages-tools-stream.sse"):
        events, _ = sse_decode((TRANSCRIPTS / name).read_bytes())
        assert all(n is not None and orjson.loads(d)["type"] == n for n, d in events), name


def test_gemini_crlf_stream():
    data = (TRANSCRIPTS / "gemini-stream.sse").read_bytes()
    assert b"\r\n\r\n" in data
    events, pending = sse_decode(data)
    assert not pending
    assert len(events) == 2
    assert all(name is None for name, _ in events)
    assert all(b"\r" not in d and b"\n" not in d for _, d in events)
    parsed = [orjson.loads(d) for _, d in events]
    assert parsed[-1]["candidates"][0]["finishReason"] == "STOP"
    events2, _ = sse_decode((TRANSCRIPTS / "gemini-stream-thinking.sse").read_bytes())
    assert len(events2) == 2
    assert orjson.loads(events2[0][1])["candidates"][0]["content"]["parts"][0]["thought"] is True


# ------------------------------------------------------------------------------------------
# SSE: edge cases
# ------------------------------------------------------------------------------------------

def test_sse_multiline_data_joined():
    assert sse_decode(b"data: a\ndata: b\ndata:c\n\n")[0] == [(None, b"a\nb\nc")]
    assert sse_decode(b"data: {\ndata:  \"x\": 1\ndata: }\n\n")[0] == [(None, b'{\n "x": 1\n}')]


def test_sse_comments_skipped():
    data = b": keep-alive\n\n:ping\ndata: x\n: inside\ndata: y\n\n:\n\n"
    assert sse_decode(data) == ([(None, b"x\ny")], False)


def test_sse_comment_only_is_not_pending():
    assert sse_decode(b": keep-alive\n") == ([], False)
    assert sse_decode(b": keep-al") == ([], True)  # a cut line is still an unfinished stream


def test_sse_field_without_space_and_only_one_space_stripped():
    assert sse_decode(b"data:x\n\n")[0] == [(None, b"x")]
    assert sse_decode(b"data:  x \n\n")[0] == [(None, b" x ")]
    assert sse_decode(b"event:e\ndata:x\n\n")[0] == [("e", b"x")]


def test_sse_data_without_value():
    assert sse_decode(b"data\n\n")[0] == [(None, b"")]
    assert sse_decode(b"data:\n\n")[0] == [(None, b"")]
    assert sse_decode(b"data\ndata\n\n")[0] == [(None, b"\n")]
    assert sse_decode(b"data: a\ndata\n\n")[0] == [(None, b"a\n")]


def test_sse_events_without_data_are_skipped():
    assert sse_decode(b"event: ping\n\n") == ([], False)
    assert sse_decode(b"id: 1\nretry: 10\n\n") == ([], False)
    # the name does not leak into the next event
    assert sse_decode(b"event: ping\n\ndata: x\n\n")[0] == [(None, b"x")]


def test_sse_id_retry_unknown_fields_ignored():
    data = b"id: 7\nretry: 1000\nfoo: bar\nevent: e\nbaz\ndata: x\n\n"
    assert sse_decode(data)[0] == [("e", b"x")]


def test_sse_field_names_are_exact():
    assert sse_decode(b"Data: x\ndata : y\ndatax: z\n\n") == ([], False)
    assert sse_decode(b"Event: e\ndata: x\n\n")[0] == [(None, b"x")]


def test_sse_empty_event_name_is_none():
    assert sse_decode(b"event:\ndata: x\n\n")[0] == [(None, b"x")]
    assert sse_decode(b"event: a\nevent: b\ndata: x\n\n")[0] == [("b", b"x")]


def test_sse_colon_in_value_kept():
    assert sse_decode(b'data: {"a": "b:c"}\n\n')[0] == [(None, b'{"a": "b:c"}')]


def test_sse_cr_at_end_of_feed_then_lf():
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.pending
    assert dec.feed(b"\n") == []
    assert dec.feed(b"\r") == [(None, b"a")]  # a lone CR ends the blank line at once
    assert not dec.pending
    assert dec.feed(b"\ndata: b\r\n\r\n") == [(None, b"b")]
    assert not dec.pending


def test_sse_cr_then_non_lf():
    dec = SSEDecoder()
    assert dec.feed(b"data: a\r") == []
    assert dec.feed(b"data: b\r\r") == [(None, b"a\nb")]


def test_sse_mixed_terminators():
    data = b"data: a\r\ndata: b\rdata: c\n\r\nevent: e\rdata: d\r\r"
    assert sse_decode(data)[0] == [(None, b"a\nb\nc"), ("e", b"d")]
    assert sse_decode(data, one_byte(data))[0] == [(None, b"a\nb\nc"), ("e", b"d")]


def test_sse_event_without_trailing_blank_line_is_pending():
    dec = SSEDecoder()
    assert dec.feed(b"data: one\n\ndata: two\n") == [(None, b"one")]
    assert dec.pending
    assert dec.close() == []
    assert dec.pending  # close sets nothing: the caller sees a truncated stream
    dec = SSEDecoder()
    assert dec.feed(b"data: one\n\ndata: tw") == [(None, b"one")]
    assert dec.pending
    assert dec.close() == []


def test_sse_pending_states():
    dec = SSEDecoder()
    assert not dec.pending
    dec.feed(b"event: x\n")
    assert dec.pending
    dec.feed(b"\n")
    assert not dec.pending
    dec.feed(b"data: [DONE]\n\n")
    assert not dec.pending


def test_sse_utf8_split_across_feeds():
    payload = '{"text":"héllo 世界 🎉"}'.encode()
    data = b"event: d\xc3\xa9lta\ndata: " + payload + b"\n\n"
    for k in range(len(data) + 1):
        assert sse_decode(data, [data[:k], data[k:]])[0] == [("délta", payload)]


def test_sse_u2028_u2029_are_not_line_breaks():
    payload = '{"text":"a\u2028b\u2029c\x85d"}'.encode()
    data = b"data: " + payload + b"\n\n"
    events, _ = sse_decode(data)
    assert events == [(None, payload)]
    assert orjson.loads(events[0][1])["text"] == "a\u2028b\u2029c\x85d"
    assert sse_decode(data, one_byte(data))[0] == events


def test_sse_invalid_utf8_event_name_does_not_raise():
    events, _ = sse_decode(b"event: \xff\xfe\ndata: x\n\n")
    assert events == [("\ufffd\ufffd", b"x")]


def test_sse_bom_stripped_once():
    assert sse_decode(b"\xef\xbb\xbfdata: x\n\n")[0] == [(None, b"x")]
    data = b"\xef\xbb\xbfevent: e\ndata: x\n\n"
    assert sse_decode(data, one_byte(data))[0] == [("e", b"x")]


def test_sse_accepts_bytes_like_and_empty_feeds():
    dec = SSEDecoder()
    assert dec.feed(b"") == []
    assert dec.feed(bytearray(b"data: a\n")) == []
    assert dec.feed(memoryview(b"\n")) == [(None, b"a")]
    assert dec.feed(b"") == []


def test_sse_random_streams_match_reference():
    rng = random.Random(1234)
    lines = [b"data: x", b"data:y", b"data", b"data: ", b"event: e", b"event:", b": c", b"",
             b"id: 3", b"retry: 5", b"junk", b"data: \xe2\x80\xa8", b"data: a:b", b""]
    terms = [b"\n", b"\r\n", b"\r"]
    for _ in range(400):
        data = b"".join(rng.choice(lines) + rng.choice(terms) for _ in range(rng.randint(0, 25)))
        expected = reference_sse(data)
        assert sse_decode(data)[0] == expected, data
        assert sse_decode(data, random_split(data, rng, 8))[0] == expected, data


def test_sse_long_line_one_byte_feeds_is_linear():
    """A long event fed 1 byte at a time must not rescan or recopy what is buffered."""
    payload = b"x" * 400_000
    data = b"data: " + payload + b"\n\n"
    dec = SSEDecoder()
    t0 = time.perf_counter()
    out = feed_chunks(dec, one_byte(data))
    elapsed = time.perf_counter() - t0
    assert out == [(None, payload)]
    assert elapsed < 5.0  # quadratic behaviour would take minutes


# ------------------------------------------------------------------------------------------
# NDJSON
# ------------------------------------------------------------------------------------------

def nd_decode(data: bytes, chunks=None):
    dec = NDJSONDecoder()
    lines = feed_chunks(dec, chunks if chunks is not None else [data])
    pending = dec.pending
    lines += dec.close()
    assert not dec.pending
    return lines, pending


@pytest.mark.parametrize("path", NDJSON_FILES, ids=lambda p: p.name)
def test_ndjson_transcript_any_chunking(path):
    data = path.read_bytes()
    expected = [line for line in data.split(b"\n") if line.strip()]
    lines, pending = nd_decode(data)
    assert lines == expected and not pending
    assert nd_decode(data, one_byte(data)) == (expected, False)
    rng = random.Random(f"nd-{path.name}")
    for _ in range(200):
        assert nd_decode(data, random_split(data, rng)) == (expected, False)
    crlf = data.replace(b"\n", b"\r\n")
    assert nd_decode(crlf) == (expected, False)
    assert nd_decode(crlf, one_byte(crlf)) == (expected, False)
    for _ in range(50):
        assert nd_decode(crlf, random_split(crlf, rng, 16)) == (expected, False)
    # without the final newline the last line comes from close()
    trimmed = data.rstrip(b"\n")
    assert nd_decode(trimmed) == (expected, True)


def test_ndjson_ollama_contents():
    lines, _ = nd_decode((TRANSCRIPTS / "ollama-chat-stream.ndjson").read_bytes())
    objs = [orjson.loads(x) for x in lines]
    assert all(not o["done"] for o in objs[:-1]) and objs[-1]["done"] is True
    assert "".join(o["message"]["content"] for o in objs).startswith("The capital of France")
    err, _ = nd_decode((TRANSCRIPTS / "ollama-chat-stream-error.ndjson").read_bytes())
    assert "error" in orjson.loads(err[-1])


def test_ndjson_blank_lines_and_close():
    dec = NDJSONDecoder()
    assert dec.feed(b'\n\r\n  \n{"a":1}\n\n{"b"') == [b'{"a":1}']
    assert dec.pending
    assert dec.feed(b':2}\r') == []
    assert dec.close() == [b'{"b":2}']
    assert not dec.pending
    assert dec.close() == []


def test_ndjson_close_blank_tail_and_crlf_split():
    dec = NDJSONDecoder()
    assert dec.feed(b'{"a":1}\r') == []
    assert dec.feed(b'\n   ') == [b'{"a":1}']
    assert dec.close() == []
    dec = NDJSONDecoder()
    assert dec.feed(b"") == [] and dec.close() == []


def test_ndjson_u2028_and_lone_cr_inside_line():
    line = '{"t":"a\u2028b\\r"}'.encode()
    assert nd_decode(line + b"\n")[0] == [line]
    assert nd_decode(b"a\rb\n")[0] == [b"a\rb"]  # only \n separates records


# ------------------------------------------------------------------------------------------
# AWS event-stream
# ------------------------------------------------------------------------------------------

def encode_header_value(value, kind=None) -> bytes:
    if kind is None:
        kind = {bool: None, str: 7, bytes: 6, uuid.UUID: 9}.get(type(value), 5)
        if isinstance(value, bool):
            kind = 0 if value else 1
    if kind in (0, 1):
        return bytes([kind])
    if kind == 2:
        return b"\x02" + struct.pack(">b", value)
    if kind == 3:
        return b"\x03" + struct.pack(">h", value)
    if kind == 4:
        return b"\x04" + struct.pack(">i", value)
    if kind in (5, 8):
        return bytes([kind]) + struct.pack(">q", value)
    if kind == 6:
        return b"\x06" + struct.pack(">H", len(value)) + value
    if kind == 7:
        raw = value.encode()
        return b"\x07" + struct.pack(">H", len(raw)) + raw
    if kind == 9:
        return b"\x09" + (value.bytes if isinstance(value, uuid.UUID) else value)
    raise ValueError(kind)


def encode_frame(headers, payload: bytes, *, total_delta=0, hlen=None) -> bytes:
    """Test-side encoder; ``headers`` is a list of (name, value[, kind]) or raw bytes."""
    if isinstance(headers, bytes):
        hbytes = headers
    else:
        parts = []
        for item in headers:
            name, value = item[0], item[1]
            kind = item[2] if len(item) > 2 else None
            raw = name.encode()
            parts.append(bytes([len(raw)]) + raw + encode_header_value(value, kind))
        hbytes = b"".join(parts)
    total = 16 + len(hbytes) + len(payload) + total_delta
    prelude = struct.pack(">II", total, len(hbytes) if hlen is None else hlen)
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + hbytes + payload
    return body + struct.pack(">I", zlib.crc32(body))


def es_decode(data: bytes, chunks=None):
    dec = EventStreamDecoder()
    msgs = feed_chunks(dec, chunks if chunks is not None else [data])
    return msgs, dec.pending


def frames_view(path: Path):
    return json.loads(path.with_suffix(".frames.json").read_text())["frames"]


@pytest.mark.parametrize("path", BIN_FILES, ids=lambda p: p.name)
def test_eventstream_transcript_matches_frames_json(path):
    data = path.read_bytes()
    frames = frames_view(path)
    msgs, pending = es_decode(data)
    assert not pending
    assert len(msgs) == len(frames)
    offset = 0
    for msg, frame in zip(msgs, frames):
        assert isinstance(msg, EventStreamMessage)
        assert msg.headers == frame["headers"]
        assert json.loads(msg.payload) == frame["payload"]
        assert isinstance(msg.payload, bytes)
        # frame sizes in the view line up with the wire bytes
        total = struct.unpack(">I", data[offset : offset + 4])[0]
        assert total == frame["bytes"]
        offset += total
        if "payload_bytes_decoded" in frame:
            inner = base64.b64decode(json.loads(msg.payload)["bytes"])
            assert json.loads(inner) == frame["payload_bytes_decoded"]
    assert offset == len(data)


@pytest.mark.parametrize("path", BIN_FILES, ids=lambda p: p.name)
def test_eventstream_transcript_any_chunking(path):
    data = path.read_bytes()
    whole, _ = es_decode(data)
    assert es_decode(data, one_byte(data)) == (whole, False)
    rng = random.Random(f"es-{path.name}")
    for _ in range(200):
        assert es_decode(data, random_split(data, rng, rng.choice([8, 64, 300, 2000]))) == (whole, False)
    # the same decoder across two streams glued together
    assert es_decode(data + data)[0] == whole + whole


def test_eventstream_first_frame_worked_example():
    data = (TRANSCRIPTS / "bedrock-converse-stream.bin").read_bytes()
    assert data[:12] == bytes.fromhex("00000089 00000052 5cb13d52")
    msgs, _ = es_decode(data[:137])
    assert msgs[0].headers == {":event-type": "messageStart", ":content-type": "application/json",
                               ":message-type": "event"}
    assert msgs[0].payload == b'{"role":"assistant","p":"abcdefghijkl"}'


def test_eventstream_throttled_exception_frame():
    msgs, _ = es_decode((TRANSCRIPTS / "bedrock-converse-stream-throttled.bin").read_bytes())
    assert msgs[-1].headers[":message-type"] == "exception"
    assert msgs[-1].headers[":exception-type"] == "throttlingException"


@pytest.mark.parametrize("path", BIN_FILES, ids=lambda p: p.name)
def test_eventstream_truncated_at_every_offset(path):
    data = path.read_bytes()
    whole, _ = es_decode(data)
    boundaries, off = {0}, 0
    for frame in frames_view(path):
        off += frame["bytes"]
        boundaries.add(off)
    for k in range(len(data) + 1):
        msgs, pending = es_decode(data[:k])
        assert msgs == whole[: len(msgs)]
        assert pending == (k not in boundaries)
        if k not in boundaries:
            assert len(msgs) == len([b for b in boundaries if b <= k]) - 1


def test_eventstream_truncated_single_message():
    frame = (TRANSCRIPTS / "bedrock-converse-stream.bin").read_bytes()[:137]
    for k in (1, 11, 12, 13, 100, 136):
        dec = EventStreamDecoder()
        assert dec.feed(frame[:k]) == []
        assert dec.pending


@pytest.mark.parametrize("path", BIN_FILES, ids=lambda p: p.name)
def test_eventstream_corrupt_prelude_byte(path):
    data = path.read_bytes()
    sizes = [f["bytes"] for f in frames_view(path)]
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    for start in (starts[0], starts[len(starts) // 2], starts[-1]):
        for pos in range(12):
            for flip in (0x01, 0x80):
                bad = bytearray(data)
                bad[start + pos] ^= flip
                with pytest.raises(EventStreamError):
                    es_decode(bytes(bad))
                # also when the corruption arrives 1 byte at a time: caught from the prelude
                dec = EventStreamDecoder()
                with pytest.raises(EventStreamError):
                    for i in range(start + 12):
                        dec.feed(bytes(bad[i : i + 1]))


@pytest.mark.parametrize("path", BIN_FILES, ids=lambda p: p.name)
def test_eventstream_corrupt_body_byte(path):
    data = path.read_bytes()
    sizes = [f["bytes"] for f in frames_view(path)]
    rng = random.Random(f"corrupt-{path.name}")
    start = 0
    for size in sizes:
        # header bytes, payload bytes and the message CRC itself
        positions = {start + 12, start + size - 5, start + size - 1} | {
            start + rng.randrange(12, size) for _ in range(5)
        }
        for pos in positions:
            bad = bytearray(data)
            bad[pos] ^= 0x20
            with pytest.raises(EventStreamError):
                es_decode(bytes(bad))
            with pytest.raises(EventStreamError):
                es_decode(bytes(bad), one_byte(bytes(bad)))
        start += size


def test_eventstream_error_keeps_earlier_messages_and_sticks():
    data = (TRANSCRIPTS / "bedrock-converse-stream.bin").read_bytes()
    bad = bytearray(data)
    bad[137 + 169 + 50] ^= 0xFF  # inside the third frame
    dec = EventStreamDecoder()
    with pytest.raises(EventStreamError) as info:
        dec.feed(bytes(bad))
    assert len(info.value.messages) == 2
    assert isinstance(info.value, ValueError)
    with pytest.raises(EventStreamError):
        dec.feed(b"")
    with pytest.raises(EventStreamError):
        dec.feed(data)


def test_eventstream_all_header_types():
    u = uuid.UUID("12345678-1234-5678-1234-567812345678")
    headers = [
        (":event-type", "chunk"),
        ("t", True),
        ("f", False),
        ("i8", -5, 2),
        ("i16", -30000, 3),
        ("i32", 2_000_000_000, 4),
        ("i32n", -2_000_000_000, 4),
        ("i64", -(2**62), 5),
        ("ts", 1735689600123, 8),
        ("raw", b"\x00\xffbytes"),
        ("text", "héllo ✓"),
        ("id", u),
        ("empty", ""),
    ]
    frame = encode_frame(headers, b'{"x":1}')
    msgs, pending = es_decode(frame)
    assert not pending
    assert msgs[0].headers == {
        ":event-type": "chunk", "t": True, "f": False, "i8": -5, "i16": -30000,
        "i32": 2_000_000_000, "i32n": -2_000_000_000, "i64": -(2**62), "ts": 1735689600123,
        "raw": b"\x00\xffbytes", "text": "héllo ✓", "id": u.bytes, "empty": "",
    }
    assert msgs[0].headers["t"] is True and type(msgs[0].headers["ts"]) is int
    assert type(msgs[0].headers["raw"]) is bytes and type(msgs[0].headers["id"]) is bytes
    assert msgs[0].payload == b'{"x":1}'
    assert es_decode(frame, one_byte(frame))[0] == msgs


def test_eventstream_empty_headers_and_payload():
    frame = encode_frame([], b"")
    assert len(frame) == 16
    msgs, pending = es_decode(frame * 3)
    assert [(m.headers, m.payload) for m in msgs] == [({}, b"")] * 3 and not pending


@pytest.mark.parametrize(
    "frame",
    [
        pytest.param(encode_frame([("a", "b")], b"x", total_delta=-10), id="total-too-small"),
        pytest.param(encode_frame([], b"", total_delta=-1), id="total-below-16"),
        pytest.param(encode_frame([("a", "b")], b"x", hlen=1000), id="headers-longer-than-message"),
        pytest.param(encode_frame([], b"", total_delta=16 * 1024 * 1024), id="over-16MiB"),
        pytest.param(encode_frame(b"\x05ab", b"x"), id="name-overruns"),
        pytest.param(encode_frame(b"\x00\x07\x00\x00", b"x"), id="empty-name"),
        pytest.param(encode_frame(b"\x01a\x07\x00\x09abc", b"x"), id="string-overruns"),
        pytest.param(encode_frame(b"\x01a\x05\x00\x00", b"x"), id="int64-overruns"),
        pytest.param(encode_frame(b"\x01a\x09" + b"\x00" * 15, b""), id="uuid-overruns"),
        pytest.param(encode_frame(b"\x01a\x0a", b"x"), id="unknown-type"),
        pytest.param(encode_frame(b"\x02\xff\xfe\x00", b"x"), id="name-not-utf8"),
        pytest.param(encode_frame(b"\x01a\x07\x00\x02\xc3\x28", b"x"), id="value-not-utf8"),
    ],
)
def test_eventstream_impossible_frames_rejected(frame):
    with pytest.raises(EventStreamError):
        es_decode(frame)


@pytest.mark.parametrize("total", [1000, 1023, 1024, 1025, 5000, 70_000])
def test_eventstream_crc_checked_on_both_sides_of_zlib_threshold(total):
    """Large messages take the zlib.crc32 path, small ones the table; both must verify."""
    payload = bytes(random.Random(total).getrandbits(8) for _ in range(total - 16 - 6))
    frame = encode_frame([("a", "b")], payload)
    assert len(frame) == total
    assert es_decode(frame)[0][0].payload == payload
    assert es_decode(frame, one_byte(frame))[0][0].payload == payload
    for pos in (12, total // 2, total - 5, total - 1):
        bad = bytearray(frame)
        bad[pos] ^= 0x04
        with pytest.raises(EventStreamError):
            es_decode(bytes(bad))


def test_eventstream_huge_length_fails_from_prelude_alone():
    frame = encode_frame([], b"", total_delta=100 * 1024 * 1024)
    dec = EventStreamDecoder()
    assert dec.feed(frame[:11]) == []
    with pytest.raises(EventStreamError):
        dec.feed(frame[11:12])


def test_eventstream_max_size_frame_accepted():
    payload = b"p" * (16 * 1024 * 1024 - 16 - 6)
    frame = encode_frame([("a", "b")], payload)
    assert len(frame) == 16 * 1024 * 1024
    msgs, _ = es_decode(frame, [frame[i : i + 65536] for i in range(0, len(frame), 65536)])
    assert msgs[0].payload == payload


def test_eventstream_large_frame_one_byte_feeds_is_linear():
    payload = b"z" * 300_000
    frame = encode_frame([(":event-type", "chunk")], payload)
    dec = EventStreamDecoder()
    t0 = time.perf_counter()
    msgs = feed_chunks(dec, one_byte(frame))
    assert time.perf_counter() - t0 < 5.0
    assert msgs[0].payload == payload and not dec.pending


def test_eventstream_accepts_bytes_like():
    data = (TRANSCRIPTS / "bedrock-converse-stream.bin").read_bytes()
    whole, _ = es_decode(data)
    dec = EventStreamDecoder()
    assert dec.feed(bytearray(data[:500])) + dec.feed(memoryview(data[500:])) == whole


def test_eventstream_message_repr_and_eq():
    m = EventStreamMessage({"a": 1}, b"x")
    assert m == EventStreamMessage({"a": 1}, b"x") and m != EventStreamMessage({"a": 2}, b"x")
    assert "payload=b'x'" in repr(m)


def test_crc32_matches_zlib():
    rng = random.Random(7)
    for n in list(range(0, 40)) + [255, 256, 1000, 4097]:
        data = bytes(rng.getrandbits(8) for _ in range(n))
        assert framing._crc32(data) == zlib.crc32(data)
        assert framing._crc32(data[n // 2 :], framing._crc32(data[: n // 2])) == zlib.crc32(data)
