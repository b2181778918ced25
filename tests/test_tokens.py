"""The plain-Python token counting layer (fastgw.tokens).

Expected chat counts are computed here with tiktoken (offline, from the shipped rank files)
and the overheads OpenAI's cookbook documents; one case is pinned to the cookbook's own
published figure.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import struct
import threading

import pytest

import fastgw.tokens as tokens
from fastgw.tokens import (
    TokenCount,
    count_message_tokens,
    count_text_tokens,
    encoding_for_model,
    get_encoding,
    image_tokens,
)

tiktoken = pytest.importorskip("tiktoken")
openai_public = pytest.importorskip("tiktoken_ext.openai_public")


def _local_bpe(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    name = url.rsplit("/", 1)[-1].removesuffix(".tiktoken")
    from fastgw._core.tokenizer import data_path

    with open(data_path(name), "rb") as f:
        raw = gzip.decompress(f.read())
    assert expected_hash is None or hashlib.sha256(raw).hexdigest() == expected_hash
    return {base64.b64decode(t): int(r) for t, r in (line.split() for line in raw.splitlines() if line)}


@pytest.fixture(scope="module")
def ref():
    saved = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = _local_bpe
    try:
        return {n: tiktoken.Encoding(**getattr(openai_public, n)()) for n in ("cl100k_base", "o200k_base")}
    finally:
        openai_public.load_tiktoken_bpe = saved


def cookbook_count(enc, messages) -> int:
    """num_tokens_from_messages() from OpenAI's cookbook, for string-valued messages."""
    n = 3
    for m in messages:
        n += 3
        for key, value in m.items():
            n += len(enc.encode_ordinary(value))
            if key == "name":
                n += 1
    return n


COOKBOOK_MESSAGES = [
    {"role": "system", "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user", "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant", "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user", "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
]


# --------------------------------------------------------------------------------------------
# Encodings and models
# --------------------------------------------------------------------------------------------

def test_get_encoding_is_cached_and_thread_safe():
    seen = []
    threads = [threading.Thread(target=lambda: seen.append(get_encoding("cl100k_base"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(e) for e in seen}) == 1
    assert get_encoding("cl100k_base") is seen[0]
    assert get_encoding("o200k_base").name == "o200k_base"
    with pytest.raises(ValueError):
        get_encoding("gpt2")


def test_encoding_api(ref):
    enc = get_encoding("o200k_base")
    text = "Hello <|endoftext|> world"
    assert enc.encode(text) == ref["o200k_base"].encode_ordinary(text)
    assert enc.encode(text, allow_special=True) == ref["o200k_base"].encode(text, allowed_special="all")
    assert enc.count(text) == len(enc.encode(text))
    assert enc.decode(enc.encode(text)) == text.encode()
    assert enc.n_vocab == 200019


@pytest.mark.parametrize(
    "model, expected",
    [
        ("gpt-4o", "o200k_base"), ("gpt-4o-mini-2024-07-18", "o200k_base"), ("chatgpt-4o-latest", "o200k_base"),
        ("gpt-4.1-nano", "o200k_base"), ("gpt-4.5-preview", "o200k_base"), ("gpt-5", "o200k_base"),
        ("gpt-5-mini", "o200k_base"), ("o1", "o200k_base"), ("o1-preview", "o200k_base"), ("o3-mini", "o200k_base"),
        ("o4-mini", "o200k_base"), ("gpt-oss-120b", "o200k_base"), ("openai/gpt-4o", "o200k_base"),
        ("azure/gpt-4o", "o200k_base"), ("OpenAI/GPT-4o", "o200k_base"), ("ft:gpt-4o-mini:org::abc", "o200k_base"),
        ("gpt-4", "cl100k_base"), ("gpt-4-turbo", "cl100k_base"), ("gpt-4-0613", "cl100k_base"),
        ("gpt-3.5-turbo", "cl100k_base"), ("azure/gpt-35-turbo", "cl100k_base"),
        ("text-embedding-3-small", "cl100k_base"), ("text-embedding-3-large", "cl100k_base"),
        ("text-embedding-ada-002", "cl100k_base"),
        ("anthropic/claude-sonnet-4", None), ("claude-3-5-haiku", None), ("gemini/gemini-2.5-pro", None),
        ("llama3", None), ("mistral-large", None), ("", None),
    ],
)
def test_encoding_for_model(model, expected):
    assert encoding_for_model(model) == expected


def test_count_text_tokens(ref):
    text = "The quick brown fox jumps over the lazy dog. 日本語 😀"
    assert count_text_tokens("gpt-4o", text) == TokenCount(len(ref["o200k_base"].encode_ordinary(text)), True, "o200k_base")
    assert count_text_tokens("gpt-4", text) == TokenCount(len(ref["cl100k_base"].encode_ordinary(text)), True, "cl100k_base")
    approx = count_text_tokens("anthropic/claude-3-opus", text)
    assert approx.exact is False and approx.encoding == "o200k_base"
    assert approx.tokens == len(ref["o200k_base"].encode_ordinary(text))
    # Special-token text is ordinary text when counting.
    assert count_text_tokens("gpt-4o", "<|endoftext|>").tokens == len(ref["o200k_base"].encode_ordinary("<|endoftext|>"))


def test_long_text_memo_is_consistent(ref):
    text = "memoised counting of a long message " * 200
    first = count_text_tokens("gpt-4o", text)
    again = count_text_tokens("gpt-4o", "".join(["memoised counting of a long message "] * 200))
    assert first == again
    assert first.tokens == len(ref["o200k_base"].encode_ordinary(text))


# --------------------------------------------------------------------------------------------
# Chat messages
# --------------------------------------------------------------------------------------------

def test_cookbook_published_figures():
    """The cookbook prints 129 (gpt-3.5-turbo, gpt-4) and 124 (gpt-4o) for its example."""
    assert count_message_tokens("gpt-3.5-turbo", COOKBOOK_MESSAGES) == TokenCount(129, True, "cl100k_base")
    assert count_message_tokens("gpt-4", COOKBOOK_MESSAGES).tokens == 129
    assert count_message_tokens("gpt-4o", COOKBOOK_MESSAGES) == TokenCount(124, True, "o200k_base")


@pytest.mark.parametrize("model, name", [("gpt-4o-mini", "o200k_base"), ("gpt-4-turbo", "cl100k_base")])
def test_messages_match_cookbook_formula(model, name, ref):
    messages = [
        {"role": "system", "content": "You answer in French. N'est-ce pas?"},
        {"role": "user", "name": "alice", "content": "What's 2+2?\n\nExplain   briefly."},
        {"role": "assistant", "content": "4 — évidemment."},
        {"role": "tool", "tool_call_id": "call_abc123", "content": '{"ok": true}'},
    ]
    assert count_message_tokens(model, messages) == TokenCount(cookbook_count(ref[name], messages), True, name)


def test_content_parts_tool_calls_and_none(ref):
    enc = ref["o200k_base"]
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "text", "text": " this picture"},
                                     {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "low"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
    ]
    expected = 3 + 3 + len(enc.encode_ordinary("user")) + len(enc.encode_ordinary("Describe")) \
        + len(enc.encode_ordinary(" this picture")) + 85 \
        + 3 + len(enc.encode_ordinary("assistant")) + len(enc.encode_ordinary("get_weather")) \
        + len(enc.encode_ordinary('{"city": "Paris"}'))
    assert count_message_tokens("gpt-4o", messages).tokens == expected


def _png(width: int, height: int) -> str:
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height) + b"\x08\x06\x00\x00\x00"
    return "data:image/png;base64," + base64.b64encode(head + b"\x00" * 40).decode()


def _jpeg(width: int, height: int) -> str:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00" + b"\x00" * 9
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return "data:image/jpeg;base64," + base64.b64encode(b"\xff\xd8" + app0 + sof + b"\xff\xd9").decode()


def test_image_tile_formula():
    # OpenAI's worked examples: 1024x1024 high -> 765; 2048x4096 high -> 1105; low -> 85.
    assert image_tokens("high", 1024, 1024) == 765
    assert image_tokens("high", 2048, 4096) == 1105
    assert image_tokens("low", 4096, 4096) == 85
    assert image_tokens("auto", None, None) == tokens.IMAGE_TOKENS_UNKNOWN_SIZE == 85
    base = count_message_tokens("gpt-4o", [{"role": "user", "content": []}]).tokens
    for url, expected in [(_png(1024, 1024), 765), (_jpeg(2048, 4096), 1105), (_png(1, 1), 255),
                          ("https://example.com/x.png", 85), ("data:image/png;base64,!!!!", 85)]:
        msg = [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}]}]
        assert count_message_tokens("gpt-4o", msg).tokens == base + expected, url


def test_tools_are_counted_approximately():
    messages = [{"role": "user", "content": "Weather in Paris?"}]
    tools = [{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "required": ["city"], "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "array", "items": {"type": "integer"}}}}}}]
    without = count_message_tokens("gpt-4o", messages).tokens
    with_tools = count_message_tokens("gpt-4o", messages, tools).tokens
    rendered = tokens._render_tools(tools)
    assert "type get_weather = (_: {" in rendered and 'unit?: "celsius" | "fahrenheit",' in rendered
    assert with_tools == without + get_encoding("o200k_base").count(rendered) + tokens.TOOLS_OVERHEAD_TOKENS
    assert 30 < with_tools - without < 80


def test_non_openai_models_are_approximate():
    result = count_message_tokens("anthropic/claude-sonnet-4-5", COOKBOOK_MESSAGES)
    assert result == TokenCount(124, False, "o200k_base")
    assert count_message_tokens("gemini/gemini-2.0-flash", []).tokens == 3


def test_message_counting_is_cheap():
    import time

    messages = COOKBOOK_MESSAGES * 5
    count_message_tokens("gpt-4o", messages)
    start = time.perf_counter()
    for _ in range(200):
        count_message_tokens("gpt-4o", messages)
    per_call = (time.perf_counter() - start) / 200
    assert per_call < 0.002  # generous: typically ~30 us for these 30 messages
