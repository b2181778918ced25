"""Token counting for budget reservations and usage estimates.

The gateway calls :func:`count_message_tokens` on every chat request to reserve budget before
the upstream reports usage, so it must be cheap: the BPE work happens in the compiled
``fastgw._core.tokenizer``, encodings load once (lazily, ~30 ms, from the rank files shipped
in ``fastgw/data/tokenizers``), and counts of long strings are memoised because chat clients
resend the whole conversation on every turn.

Counts are *exact* only for OpenAI models, whose tokenizers are published. Every other model
(Anthropic, Gemini, Llama, unknown names) is counted with ``o200k_base`` and labelled
``exact=False``: a usable estimate, never a bill.
"""
from __future__ import annotations

import base64
import math
import threading
from typing import Any, Iterable

import msgspec

from ._core import request as _request
from ._core import tokenizer as _tokenizer

__all__ = [
    "Encoding",
    "TokenCount",
    "get_encoding",
    "encoding_for_model",
    "count_text_tokens",
    "count_message_tokens",
    "count_prompt",
    "image_tokens",
    "ENCODING_NAMES",
]

Encoding = _tokenizer.Encoding
Prompt = _request.Prompt
ENCODING_NAMES: tuple[str, ...] = _tokenizer.ENCODING_NAMES
FALLBACK_ENCODING = "o200k_base"


class TokenCount(msgspec.Struct, frozen=True, gc=False):
    """``exact`` is False when the model's own tokenizer is unknown and o200k_base stood in."""

    tokens: int
    exact: bool
    encoding: str


# --------------------------------------------------------------------------------------------
# Encodings
# --------------------------------------------------------------------------------------------

_encodings: dict[str, Encoding] = {}
_load_lock = threading.Lock()


def get_encoding(name: str) -> Encoding:
    """The encoding called ``name``, loaded on first use and shared afterwards."""
    enc = _encodings.get(name)
    if enc is None:
        with _load_lock:  # two threads asking at once must not both pay the load
            enc = _encodings.get(name)
            if enc is None:
                enc = _tokenizer.load_encoding(name)
                _encodings[name] = enc
    return enc


# Order matters: more specific prefixes first (gpt-4o before gpt-4).
_MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("gpt-oss", "o200k_base"),  # o200k_harmony: same ranks, extra specials only
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("gpt-35", "cl100k_base"),  # Azure's spelling of gpt-3.5
    ("text-embedding-3", "cl100k_base"),
    ("text-embedding-ada-002", "cl100k_base"),
)

_model_cache: dict[str, str | None] = {}


def encoding_for_model(model: str) -> str | None:
    """Encoding name of an OpenAI model, or None when the model's tokenizer is not published.

    A routing prefix ("openai/gpt-4o", "azure/gpt-4o") and a fine-tune marker
    ("ft:gpt-4o-mini:org::id") are ignored.
    """
    try:
        return _model_cache[model]
    except KeyError:
        pass
    name = model.strip().lower().rsplit("/", 1)[-1]
    if name.startswith("ft:"):
        name = name[3:]
    result = None
    for prefix, encoding in _MODEL_PREFIXES:
        if name.startswith(prefix):
            result = encoding
            break
    if len(_model_cache) < 4096:  # model names come from clients: bound the memo
        _model_cache[model] = result
    return result


def _encoding_of(model: str) -> tuple[Encoding, bool]:
    name = encoding_for_model(model)
    if name is None:
        return get_encoding(FALLBACK_ENCODING), False
    return get_encoding(name), True


def preload_encodings(models: Iterable[str]) -> None:
    """Load the encodings these models count with now, not on a worker's first request
    (a load takes 70-170 ms: it would be that request's latency)."""
    for model in models:
        _encoding_of(model)


# --------------------------------------------------------------------------------------------
# Memoised counting of long strings
# --------------------------------------------------------------------------------------------

_MEMO_MIN_CHARS = 512        # shorter strings count faster than they hash
_MEMO_MAX_CHARS = 8_000_000  # total characters kept alive by the memo, per encoding
_memo: dict[str, dict[str, int]] = {}
_memo_chars: dict[str, int] = {}


def _count(enc: Encoding, text: str) -> int:
    if len(text) < _MEMO_MIN_CHARS:
        return enc.count(text)
    memo = _memo.get(enc.name)
    if memo is None:
        memo = _memo.setdefault(enc.name, {})
        _memo_chars.setdefault(enc.name, 0)
    n = memo.get(text)
    if n is None:
        n = enc.count(text)
        if len(text) <= _MEMO_MAX_CHARS // 8:
            chars = _memo_chars[enc.name] + len(text)
            while chars > _MEMO_MAX_CHARS and memo:  # evict oldest first (dicts keep order)
                try:
                    old = next(iter(memo))
                    del memo[old]
                except (KeyError, RuntimeError, StopIteration):  # raced with another thread
                    break
                chars -= len(old)
            memo[text] = n
            _memo_chars[enc.name] = chars
    return n


def _count_all(enc: Encoding, texts: list[str]) -> int:
    """``sum(_count(enc, t) for t in texts)`` with the common cases inline: a long
    conversation is hundreds of strings, and a call per string costs more than a memo hit."""
    memo = _memo.get(enc.name) or {}
    count = enc.count
    total = 0
    for text in texts:
        if len(text) < _MEMO_MIN_CHARS:
            total += count(text)
        else:
            n = memo.get(text)
            total += _count(enc, text) if n is None else n
    return total


def count_text_tokens(model: str, text: str) -> TokenCount:
    """Tokens of plain text (a completion prompt, an embedding input) for ``model``."""
    enc, exact = _encoding_of(model)
    return TokenCount(_count(enc, text), exact, enc.name)


# --------------------------------------------------------------------------------------------
# Chat messages
# --------------------------------------------------------------------------------------------

# Overheads from OpenAI's cookbook ("How to count tokens with tiktoken"), valid for every
# chat model since gpt-3.5-turbo-0613: each message is wrapped in
# <|start|>{role/name}\n{content}<|end|>\n, and the reply is primed with
# <|start|>assistant<|message|>.
TOKENS_PER_MESSAGE = 3
TOKENS_PER_NAME = 1
TOKENS_REPLY_PRIMING = 3

# Images (OpenAI vision guide, tile-based models such as gpt-4o and gpt-4.1): "low" detail
# costs a flat 85; otherwise the image is scaled to fit 2048x2048, then its short side to
# 768, and each 512px tile costs 170 on top of the base 85. When the size cannot be read
# (a remote URL) the documented flat figure for "low" is used: an estimate, not a bound.
IMAGE_BASE_TOKENS = 85
IMAGE_TILE_TOKENS = 170
IMAGE_TOKENS_UNKNOWN_SIZE = 85

# Tool definitions are rendered by OpenAI into the system prompt as a TypeScript-like
# namespace; that rendering is not published, so it is approximated (see _render_tools).
TOOLS_OVERHEAD_TOKENS = 12


def image_tokens(detail: str | None = None, width: int | None = None, height: int | None = None) -> int:
    """Cost of one image part under the tile formula (see IMAGE_* above)."""
    if detail == "low":
        return IMAGE_BASE_TOKENS
    if not width or not height or width <= 0 or height <= 0:
        return IMAGE_TOKENS_UNKNOWN_SIZE
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        r = 2048 / max(w, h)
        w, h = w * r, h * r
    if min(w, h) > 768:
        r = 768 / min(w, h)
        w, h = w * r, h * r
    tiles = math.ceil(int(w) / 512) * math.ceil(int(h) / 512)
    return IMAGE_BASE_TOKENS + IMAGE_TILE_TOKENS * tiles


def _image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG, GIF, WebP or JPEG header (enough bytes to hold it)."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:6] in (b"GIF87a", b"GIF89a") and len(data) >= 10:
        return int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP" and len(data) >= 30:
        kind = data[12:16]
        if kind == b"VP8 ":
            return int.from_bytes(data[26:28], "little") & 0x3FFF, int.from_bytes(data[28:30], "little") & 0x3FFF
        if kind == b"VP8L":
            b = int.from_bytes(data[21:25], "little")
            return (b & 0x3FFF) + 1, ((b >> 14) & 0x3FFF) + 1
        if kind == b"VP8X":
            return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        return None
    if data[:2] == b"\xff\xd8":
        i = 2
        n = len(data)
        while i + 9 <= n:
            if data[i] != 0xFF:
                return None
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
                i += 2
                continue
            seg = int.from_bytes(data[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
            i += 2 + seg
    return None


def _data_url_size(url: str) -> tuple[int, int] | None:
    """Image size of a base64 data URL; only the head is decoded (JPEG headers can sit
    behind tens of KB of EXIF, hence the 64 KB window)."""
    comma = url.find(",", 0, 200)
    if comma < 0 or not url.startswith("data:") or ";base64" not in url[:comma]:
        return None
    head = url[comma + 1:comma + 1 + 87_384]
    head = head[: len(head) // 4 * 4]
    try:
        data = base64.b64decode(head)
    except (ValueError, TypeError):
        return None
    try:
        return _image_size(data)
    except IndexError:
        return None


def _image_part_tokens(part: dict) -> int:
    image = part.get("image_url")
    if isinstance(image, str):
        url, detail = image, None
    elif isinstance(image, dict):
        url, detail = image.get("url"), image.get("detail")
    else:
        url, detail = None, part.get("detail")
    if detail == "low":
        return IMAGE_BASE_TOKENS
    size = _data_url_size(url) if isinstance(url, str) and url.startswith("data:") else None
    if size is None:
        return IMAGE_TOKENS_UNKNOWN_SIZE
    return image_tokens(detail, size[0], size[1])


def _ts_type(schema: Any) -> str:
    if not isinstance(schema, dict):
        return "any"
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        return " | ".join(msgspec.json.encode(v).decode() for v in enum)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(_ts_type({**schema, "type": k}) for k in kind)
    if kind in ("integer", "number"):
        return "number"
    if kind == "array":
        return _ts_type(schema.get("items")) + "[]"
    if kind == "object":
        props = schema.get("properties")
        if isinstance(props, dict) and props:
            return "{\n" + "".join(f"{k}: {_ts_type(v)},\n" for k, v in props.items()) + "}"
        return "object"
    if kind in ("string", "boolean", "null"):
        return kind
    return "any"


def _render_tools(tools: Iterable[Any]) -> str:
    """Approximate the TypeScript-like namespace OpenAI renders tool definitions into."""
    out = ["namespace functions {\n\n"]
    for tool in tools:
        if not isinstance(tool, dict):
            continue
        fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        name = fn.get("name") or ""
        desc = fn.get("description")
        if isinstance(desc, str) and desc:
            out.append(f"// {desc}\n")
        params = fn.get("parameters")
        props = params.get("properties") if isinstance(params, dict) else None
        if isinstance(props, dict) and props:
            required = params.get("required") or ()
            out.append(f"type {name} = (_: {{\n")
            for pname, pschema in props.items():
                pdesc = pschema.get("description") if isinstance(pschema, dict) else None
                if isinstance(pdesc, str) and pdesc:
                    out.append(f"// {pdesc}\n")
                optional = "" if pname in required else "?"
                out.append(f"{pname}{optional}: {_ts_type(pschema)},\n")
            out.append("}) => any;\n\n")
        else:
            out.append(f"type {name} = () => any;\n\n")
    out.append("} // namespace functions")
    return "".join(out)


def count_message_tokens(model: str, messages: list[dict], tools: list[dict] | None = None) -> TokenCount:
    """Prompt tokens of a chat request: the cookbook per-message overheads plus the tokens of
    every string field (role, content, name, tool_call_id...), text content parts, images by
    the tile formula, tool calls' names and arguments, and an approximation for tools."""
    return count_prompt(model, _request.message_prompt(messages if isinstance(messages, list) else list(messages)),
                        tools)


def count_prompt(model: str, prompt: Prompt, tools: list[dict] | None = None) -> TokenCount:
    """Tokens of a prompt already taken apart (by ``fastgw._core.request``, while validating).

    Chat prompts add the overheads above; a text prompt (completions, embeddings) is its
    strings plus any token ids, and is exact whenever it holds no string to count.
    """
    enc, exact = _encoding_of(model)
    total = prompt.token_ids + _count_all(enc, prompt.texts)
    for part in prompt.images:
        total += _image_part_tokens(part)
    if prompt.chat:
        total += TOKENS_REPLY_PRIMING + TOKENS_PER_MESSAGE * prompt.messages + TOKENS_PER_NAME * prompt.names
    elif not prompt.texts:
        exact = True  # only token ids: nothing was counted with a stand-in tokenizer
    if tools:
        total += _count(enc, _render_tools(tools)) + TOOLS_OVERHEAD_TOKENS
    return TokenCount(total, exact, enc.name)
