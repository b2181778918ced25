"""Exactness of the compiled BPE tokenizer (fastgw._core.tokenizer) against tiktoken.

tiktoken is the reference, used offline: its own encoding constructors
(``tiktoken_ext.openai_public``) supply the split patterns and special tokens, and their
rank-file loader is pointed at the files this package ships, so nothing is downloaded.
Corpora are generated from fixed seeds, so a failure reproduces exactly.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import random
import string

import pytest

from fastgw._core import tokenizer

tiktoken = pytest.importorskip("tiktoken")
openai_public = pytest.importorskip("tiktoken_ext.openai_public")

NAMES = ("cl100k_base", "o200k_base")


def _local_bpe(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
    """Stand-in for tiktoken.load.load_tiktoken_bpe that reads the shipped file for ``url``."""
    name = url.rsplit("/", 1)[-1].removesuffix(".tiktoken")
    with open(tokenizer.data_path(name), "rb") as f:
        raw = gzip.decompress(f.read())
    assert expected_hash is None or hashlib.sha256(raw).hexdigest() == expected_hash
    ranks = {}
    for line in raw.splitlines():
        if line:
            token, rank = line.split()
            ranks[base64.b64decode(token)] = int(rank)
    return ranks


@pytest.fixture(scope="module")
def reference():
    saved = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = _local_bpe
    try:
        refs = {name: tiktoken.Encoding(**getattr(openai_public, name)()) for name in NAMES}
    finally:
        openai_public.load_tiktoken_bpe = saved
    return refs


@pytest.fixture(scope="module")
def ours():
    return {name: tokenizer.load_encoding(name) for name in NAMES}


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------

WORDS = (
    "the of and to in is that it was for on are as with his they at be this from have or by "
    "one had not but what all were when we there can an your which their said if do will each "
    "about how up out them then she many some so these would other into has more her two like "
    "him see time could make than first been its who now people my made over did down only way "
    "tokenizer gateway budget reservation latency throughput naïve café résumé coöperate façade "
    "über straße Œuvre ﬁnance İstanbul ı ǅemal ǈ ǋubljana ᾈ ʰ ˆ ꜰ Москва привет Ελλάδα λόγος "
    "שלום عربي हिन्दी ภาษาไทย 한국어 日本語 中文 ქართული Ⴀ ᲐᲑᲒ Հայերեն 𐐀𐐨 𝔘𝔫𝔦 ℌ ℍ Ⅻ"
).split()
CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'RE", "'Re", "'rE", "'ve", "'VE", "'m", "'M",
                "'ll", "'LL", "'lL", "'Ll", "'d", "'D", "'ſ", "’s", "'x", "'", "''", "'lx", "'v"]
PUNCT = list(".,;:!?()[]{}<>\"'`~@#$%^&*-_=+|\\/") + ["...", "--", "—", "–", "«", "»", "¿", "¡", "…", "•", "§", "©", "™", "€", "£", "¥", "→", "≠"]
WS = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\r", "\x0b", "\x0c", "\x85", "\xa0", "\u1680",
      "\u2003", "\u2028", "\u2029", "\u202f", "\u205f", "\u3000", "\u200b", "\x1c", "\x1f", " \n ", "\t\n"]
DIGITS = list("0123456789") + ["٠", "٣", "٩", "۴", "०", "९", "０", "９", "²", "³", "¹", "½", "¾", "Ⅻ", "ⅷ", "①", "⑳", "𝟘", "𝟡", "〇", "〥"]
MARKS = [chr(c) for c in range(0x300, 0x370)] + ["\u0483", "\u0591", "\u05b0", "\u064b", "\u0651", "\u0670",
                                                "\u093c", "\u093e", "\u094d", "\u0e31", "\u0e48", "\u1ab0", "\u20dd", "\u20e3", "\ufe0f", "\ufe0e", "\U000e0100"]
EMOJI = ["😀", "😂", "🤖", "👍", "👍🏽", "🏳️‍🌈", "👨‍👩‍👧‍👦", "🧑🏿‍💻", "❤️", "🇯🇵", "🇺🇸", "1️⃣", "#️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "✅", "🔥", "🎉", "☕", "🫠", "🪿"]
SPECIAL_TEXT = ["<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|endofprompt|>",
                "<|endoftext|", "<|endof", "<|", "|>", "<|startoftext|>", "<|im_start|>"]
CASED_RANGES = [(0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x4FF), (0x531, 0x587),
                (0x10A0, 0x10FF), (0x1C90, 0x1CBF), (0x1E00, 0x1FFF), (0x2C00, 0x2C7F), (0xA640, 0xA69F),
                (0xA720, 0xA7FF), (0xFF21, 0xFF5A), (0x10400, 0x1044F), (0x1D400, 0x1D7FF), (0x1E900, 0x1E94B)]
SCRIPT_RANGES = [(0x4E00, 0x9FFF), (0x3041, 0x30FF), (0xAC00, 0xD7A3), (0x0600, 0x06FF), (0x0590, 0x05FF),
                 (0x0900, 0x097F), (0x0E00, 0x0E7F), (0x1780, 0x17FF), (0x20000, 0x2A6DF), (0x31350, 0x323AF),
                 (0x2EBF0, 0x2EE5D), (0x11F00, 0x11F5F), (0x1E4D0, 0x1E4F9), (0x10D40, 0x10D8F), (0x11380, 0x113FF),
                 (0x16D40, 0x16D79), (0x1E5D0, 0x1E5FF), (0x1E6C0, 0x1E6FF), (0xFF00, 0xFFEF), (0x2E80, 0x2FDF)]


def _pick_range(rng: random.Random, ranges) -> str:
    lo, hi = rng.choice(ranges)
    return chr(rng.randint(lo, hi))


def _prose(rng):
    out = []
    for _ in range(rng.randint(1, 40)):
        w = rng.choice(WORDS)
        style = rng.random()
        if style < 0.1:
            w = w.upper()
        elif style < 0.25:
            w = w.capitalize()
        elif style < 0.3:
            w = "".join(c.upper() if rng.random() < 0.5 else c for c in w)
        if rng.random() < 0.12:
            w += rng.choice(CONTRACTIONS)
        if rng.random() < 0.15:
            w += rng.choice(PUNCT)
        if rng.random() < 0.05:
            w = rng.choice(PUNCT) + w
        out.append(w)
        out.append(rng.choice([" "] * 12 + ["\n", "  ", "\n\n", "\t", ", "]))
    return "".join(out)


def _code(rng):
    lines = []
    for _ in range(rng.randint(1, 12)):
        indent = rng.choice(["", "    ", "        ", "\t", "\t\t", "  "])
        ident = rng.choice(["foo", "barBaz", "snake_case_name", "HTTPServer", "x1", "__init__", "getURL", "i", "ünïcode"])
        kind = rng.randrange(6)
        if kind == 0:
            line = f"def {ident}(self, a: int = {rng.randint(0, 99999)}) -> dict[str, list]:"
        elif kind == 1:
            line = f"{ident} = {{'k': [1, 2.5e-3, 0x{rng.randrange(1 << 32):x}], \"s\": \"a\\n\\t\"}}  # it's a comment"
        elif kind == 2:
            line = f"if ({ident} != null && {ident}.length >= {rng.randint(0, 999)}) {{ return !{ident}; }}"
        elif kind == 3:
            line = f"// TODO({ident}): handle the edge-case where x<=0 || y>>=2; see https://example.com/a/b?c=d&e=f"
        elif kind == 4:
            line = f"<div class=\"{ident}\">{ident}</div><!-- {rng.choice(SPECIAL_TEXT)} -->"
        else:
            line = f"SELECT {ident}, COUNT(*) FROM t WHERE id IN ({', '.join(str(rng.randint(0, 10**6)) for _ in range(3))});"
        trailing = rng.choice(["", "", " ", "  ", "\t"])
        lines.append(indent + line + trailing)
    return rng.choice(["\n", "\r\n", "\n\n"]).join(lines) + rng.choice(["", "\n", "\n\n\n", "  \n"])


def _scripts(rng):
    out = []
    for _ in range(rng.randint(1, 30)):
        r = rng.random()
        if r < 0.6:
            out.append("".join(_pick_range(rng, SCRIPT_RANGES) for _ in range(rng.randint(1, 8))))
        elif r < 0.8:
            out.append("".join(_pick_range(rng, CASED_RANGES) for _ in range(rng.randint(1, 8))))
        else:
            out.append(rng.choice(PUNCT + ["。", "、", "「", "」", "！", "？", "・"]))
        if rng.random() < 0.3:
            out.append(rng.choice([" ", "\n", "\u3000", ""]))
    return "".join(out)


def _emoji(rng):
    out = []
    for _ in range(rng.randint(1, 20)):
        r = rng.random()
        if r < 0.5:
            out.append(rng.choice(EMOJI))
        elif r < 0.7:
            out.append(chr(rng.randint(0x1F300, 0x1FAFF)) + rng.choice(["", "\u200d", "\ufe0f", "\U0001F3FB"]))
        elif r < 0.9:
            out.append(rng.choice(WORDS))
        else:
            out.append(rng.choice(PUNCT))
        out.append(rng.choice(["", "", " ", "\n"]))
    return "".join(out)


def _marks(rng):
    out = []
    for _ in range(rng.randint(1, 20)):
        r = rng.random()
        if r < 0.4:
            base = rng.choice(["a", "E", "x", "ǅ", "ß", "1", " ", "'", "!", "\n", "ا", "क", "ก", "字", "😀", ""])
            out.append(base + "".join(rng.choice(MARKS) for _ in range(rng.randint(1, 4))))
        elif r < 0.7:
            out.append(rng.choice(WORDS) + rng.choice(["", rng.choice(MARKS)]))
        else:
            out.append(rng.choice(CONTRACTIONS + PUNCT + [" ", "\n"]))
    return "".join(out)


def _whitespace(rng):
    out = []
    for _ in range(rng.randint(1, 25)):
        if rng.random() < 0.55:
            out.append("".join(rng.choice(WS) for _ in range(rng.randint(1, 6))))
        else:
            out.append(rng.choice(WORDS + PUNCT + DIGITS + CONTRACTIONS + ["x", "A", "1", "!"]))
    return "".join(out)


def _digits(rng):
    out = []
    for _ in range(rng.randint(1, 15)):
        r = rng.random()
        if r < 0.5:
            out.append("".join(rng.choice(string.digits) for _ in range(rng.randint(1, 20))))
        elif r < 0.7:
            out.append("".join(rng.choice(DIGITS) for _ in range(rng.randint(1, 6))))
        elif r < 0.85:
            out.append(rng.choice(WORDS) + str(rng.randint(0, 10**rng.randint(1, 9))))
        else:
            out.append(rng.choice(["1st", "2nd", "3'rd", "v1.2.3", "10,000", "3.14159", "-42", "1e10", "0x1F", "12:30", "2024-01-01"]))
        out.append(rng.choice(["", " ", ",", ".", "\n", " - "]))
    return "".join(out)


def _specials(rng):
    out = []
    for _ in range(rng.randint(1, 10)):
        r = rng.random()
        if r < 0.4:
            out.append(rng.choice(SPECIAL_TEXT))
        elif r < 0.8:
            out.append(rng.choice(WORDS))
        else:
            out.append(rng.choice(WS + PUNCT))
        out.append(rng.choice(["", " ", "\n"]))
    return "".join(out)


def _surrogates(rng):
    out = []
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.3:
            out.append(chr(rng.randint(0xD800, 0xDFFF)))
        elif r < 0.5:
            out.append(chr(rng.randint(0xD800, 0xDBFF)) + chr(rng.randint(0xDC00, 0xDFFF)))
        elif r < 0.6:
            out.append(chr(rng.randint(0xDC00, 0xDFFF)) + chr(rng.randint(0xD800, 0xDBFF)))
        else:
            out.append(rng.choice(WORDS + PUNCT + WS + EMOJI))
    return "".join(out)


def _random_cps(rng):
    n = rng.randint(1, 40)
    r = rng.random()
    if r < 0.4:
        cps = [rng.randint(0, 0x10FFFF) for _ in range(n)]
    elif r < 0.8:
        cps = [rng.choice([rng.randint(0, 0xFFFF), rng.randint(0x10000, 0x3FFFF), rng.randint(0xE0000, 0xE01FF)]) for _ in range(n)]
    else:
        cps = [rng.choice([rng.randint(0, 0x7F), rng.randint(0x80, 0x7FF), rng.randint(0x800, 0xFFFF)]) for _ in range(n)]
    return "".join(chr(c) for c in cps)


def _unicode_versions(rng):
    """Code points whose class changed between Unicode 14 and 18 (the table's corrections)."""
    out = []
    for _ in range(rng.randint(1, 15)):
        lo, hi, _cls = rng.choice(tokenizer._UNICODE16_FIXES)
        c = chr(rng.randint(lo, hi))
        out.append(rng.choice(["", "a", "A", " ", "'", "1", ".", "\n"]) + c + rng.choice(["", "s", "'s", "B", ".com", " ", "1"]))
    return "".join(out)


def _long(rng):
    kind = rng.randrange(8)
    n = rng.randint(100, 700)
    if kind == 0:
        return rng.choice("axZ!1 \n\t.") * n
    if kind == 1:
        return base64.b64encode(rng.randbytes(n)).decode()
    if kind == 2:
        return "".join(rng.choice("ab") for _ in range(n))
    if kind == 3:
        return rng.randbytes(n).hex()
    if kind == 4:
        return "".join(_pick_range(rng, SCRIPT_RANGES[:3]) for _ in range(n // 3))
    if kind == 5:
        return "".join(rng.choice(EMOJI) for _ in range(n // 10))
    if kind == 6:
        return " " * n + "x" + "\n" * (n // 2) + "\t \r\n" * (n // 10)
    return "".join(rng.choice(string.punctuation) for _ in range(n))


GENERATORS = [
    (_prose, 20), (_code, 10), (_scripts, 10), (_emoji, 6), (_marks, 10), (_whitespace, 10),
    (_digits, 8), (_specials, 5), (_surrogates, 4), (_random_cps, 8), (_unicode_versions, 5), (_long, 4),
]


def make_corpus(seed: int = 20250601, size: int = 12000) -> list[str]:
    """``size`` strings, the last fifth of them concatenations of fragments of other kinds."""
    rng = random.Random(seed)
    funcs = [f for f, w in GENERATORS for _ in range(w)]
    corpus = [rng.choice(funcs)(rng) for _ in range(size * 4 // 5)]
    while len(corpus) < size:
        corpus.append("".join(rng.choice(funcs)(rng) for _ in range(rng.randint(2, 5))))
    return corpus


CORPUS = make_corpus()


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------

def _mismatches(ours, ref, texts, limit=5):
    bad = []
    for text in texts:
        if ours.encode(text) != ref.encode_ordinary(text):
            bad.append(text)
            if len(bad) >= limit:
                break
    return bad


def test_corpus_is_varied():
    assert len(CORPUS) >= 10000
    joined = "".join(CORPUS)
    assert any(0xD800 <= ord(c) <= 0xDFFF for c in joined)
    assert any(ord(c) > 0xFFFF for c in joined)
    assert "<|endoftext|>" in joined and "\u200d" in joined and "'LL" in joined


@pytest.mark.parametrize("name", NAMES)
def test_patterns_and_specials_match_tiktoken(name, reference):
    spec = tokenizer.encoding_spec(name)
    assert spec["pattern"] == reference[name]._pat_str
    assert spec["special_tokens"] == reference[name]._special_tokens


@pytest.mark.parametrize("name", NAMES)
def test_corpus_matches_tiktoken(name, ours, reference):
    bad = _mismatches(ours[name], reference[name], CORPUS)
    assert not bad, [(t[:80], ours[name].split(t)[:12]) for t in bad]


@pytest.mark.parametrize("name", NAMES)
def test_fixed_cases(name, ours, reference):
    cases = [
        "", " ", "a", "\n", "hello world", "Hello, World!  It's a test.\n\n  foo  ",
        "I'LL DO IT'S 'S 'Ve 'rE", "'ſ ſ's", "HTTPServer iPhone McDonald's ǅemal", "日本語のテキスト",
        "e\u0301t\u0301", "\u0301abc", " \u0301", "12345678 1,234.5", "  \t\n\r\n  x", "x  ", "x\n ",
        "a/b//c\n/", " !!!\n\n", "\r\n\r\n", "\u3000\u3000x", "\x85x", "a" * 1000, "ab" * 600,
        "\ud800", "\udfff\ud800", "\ud83d\ude00", "a\ud83dz", "<|endoftext|>",
        "😀" * 50, " " * 300 + "\n" + " " * 5, "\t" * 129, "1" * 300,
    ]
    assert _mismatches(ours[name], reference[name], cases, limit=len(cases)) == []


@pytest.mark.parametrize("name", NAMES)
def test_every_code_point(name, ours, reference):
    """Each code point in contexts that expose letter/number/mark/other through the ASCII
    around it, so every entry of the class table is checked against Unicode 16 as tiktoken
    sees it. Chunks keep the strings long (fast) and a failure local."""
    enc, ref = ours[name], reference[name]
    bad = []
    step = 4096
    for lo in range(0, 0x110000, step):
        text = "".join(f"{c}.com 1{c}23 {c}'s!{c}'S\n" for c in map(chr, range(lo, lo + step)))
        if enc.encode(text) != ref.encode_ordinary(text):
            bad.append(hex(lo))
    assert not bad


@pytest.mark.parametrize("name", NAMES)
def test_allow_special(name, ours, reference):
    texts = [t for t in CORPUS if "<|" in t] + ["<|endoftext|>", "a<|endoftext|>b", "<|endofprompt|><|endoftext|>", "  <|fim_middle|>  "]
    assert len(texts) > 200
    for text in texts:
        expected = reference[name].encode(text, allowed_special="all")
        assert ours[name].encode(text, allow_special=True) == expected, text
        assert ours[name].count(text, allow_special=True) == len(expected)


@pytest.mark.parametrize("name", NAMES)
def test_count_and_decode(name, ours):
    enc = ours[name]
    for text in CORPUS[::7]:
        tokens = enc.encode(text)
        assert enc.count(text) == len(tokens)
        fixed = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
        assert enc.decode(tokens) == fixed.encode("utf-8")
    special = enc.special_tokens["<|endoftext|>"]
    assert enc.decode([special]) == b"<|endoftext|>"
    with pytest.raises(KeyError):
        enc.decode([enc.n_vocab + 5])


def test_long_text_releases_gil_path(ours, reference):
    text = " ".join(CORPUS[:600])
    assert len(text.encode("utf-8", "surrogatepass")) > 16384
    for name in NAMES:
        assert ours[name].encode(text) == reference[name].encode_ordinary(text)


def test_split_pieces():
    enc = tokenizer.load_encoding("cl100k_base")
    assert enc.split("Hello world's  \n\n 123456") == ["Hello", " world", "'s", "  \n\n", " ", "123", "456"]
    o2 = tokenizer.load_encoding("o200k_base")
    assert o2.split("HelloWorld's ABCdef") == ["Hello", "World's", " ABCdef"]


@pytest.mark.parametrize("name", NAMES)
def test_split_matches_regex_module_on_ascii(name):
    """The pieces themselves, against the third-party ``regex`` engine (a tiktoken dependency).
    ASCII only: its Unicode version is not tiktoken's."""
    regex = pytest.importorskip("regex")
    pattern = regex.compile(tokenizer.encoding_spec(name)["pattern"])
    enc = tokenizer.load_encoding(name)
    texts = [t for t in CORPUS if t.isascii()]
    assert len(texts) > 1000
    for text in texts:
        assert enc.split(text) == pattern.findall(text), text


def test_unknown_encoding():
    with pytest.raises(ValueError):
        tokenizer.load_encoding("p50k_base")


def test_rejects_bad_rank_data():
    with pytest.raises(ValueError):
        tokenizer.Encoding("x", b"QQ== 0\n@@@ 1\n", {"<|endoftext|>": 9}, False)
