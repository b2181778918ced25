"""fastgw's compiled BPE tokenizer against tiktoken, on the same texts.

Run: ``.venv/bin/python benchmarks/bench_tokenizer.py [--repeat N]``. Prints a markdown table
of MB/s (UTF-8 input) and tokens/s, best of N runs, single thread. tiktoken is built offline
from the rank files fastgw ships (its own constructors supply patterns and specials).
"""
from __future__ import annotations

import argparse
import base64
import gzip
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout with the extension built in place
    sys.path.insert(0, str(ROOT))

import tiktoken  # noqa: E402
import tiktoken_ext.openai_public as openai_public  # noqa: E402

from fastgw import tokens  # noqa: E402
from fastgw._core import tokenizer  # noqa: E402

NAMES = ("cl100k_base", "o200k_base")


def reference(name: str) -> tiktoken.Encoding:
    def local_bpe(url: str, expected_hash: str | None = None) -> dict[bytes, int]:
        with open(tokenizer.data_path(url.rsplit("/", 1)[-1].removesuffix(".tiktoken")), "rb") as f:
            raw = gzip.decompress(f.read())
        return {base64.b64decode(t): int(r) for t, r in (line.split() for line in raw.splitlines() if line)}

    saved = openai_public.load_tiktoken_bpe
    openai_public.load_tiktoken_bpe = local_bpe
    try:
        return tiktoken.Encoding(**getattr(openai_public, name)())
    finally:
        openai_public.load_tiktoken_bpe = saved


WORDS = ("the of and to in is that it was for on are as with his they at be this from have or by one had "
         "not but what all were when we there can an your which their said if do will each about how up out "
         "them then she many some so these would other into has more her two like him see time could make "
         "than first been its who now people my made over did down only way find use may water long little "
         "very after words called just where most know government information development however").split()


def english(rng: random.Random, size: int) -> str:
    out, n = [], 0
    while n < size:
        w = rng.choice(WORDS)
        if rng.random() < 0.08:
            w = w.capitalize()
        if rng.random() < 0.1:
            w += rng.choice([",", ".", ";", "'s", "!", "?", ":"])
        if rng.random() < 0.02:
            w += "\n\n"
        out.append(w)
        n += len(w) + 1
    return " ".join(out)[:size]


def mixed(rng: random.Random, count: int) -> list[str]:
    """Chat-sized texts of several kinds: prose, code, CJK, emoji, numbers, whitespace-heavy."""
    texts = []
    for _ in range(count):
        kind = rng.randrange(6)
        if kind == 0:
            texts.append(english(rng, rng.randint(20, 800)))
        elif kind == 1:
            lines = [f"{'    ' * rng.randint(0, 3)}def f_{rng.randint(0, 999)}(x, y={rng.randint(0, 99)}):  # {english(rng, 30)}"
                     for _ in range(rng.randint(1, 15))]
            texts.append("\n".join(lines))
        elif kind == 2:
            texts.append("".join(chr(rng.randint(0x4E00, 0x9FFF)) if rng.random() < 0.8 else rng.choice("。、 ")
                                 for _ in range(rng.randint(10, 300))))
        elif kind == 3:
            texts.append(" ".join(rng.choice(["😀", "👍🏽", "👨‍👩‍👧", "hello", "ok!", "🇯🇵", "naïve", "Привет"])
                                  for _ in range(rng.randint(3, 60))))
        elif kind == 4:
            texts.append(", ".join(str(rng.randint(0, 10 ** 9)) for _ in range(rng.randint(3, 80))))
        else:
            texts.append("".join(rng.choice([" ", "\n", "\t", "  ", "word", "x=1;", "\r\n"]) for _ in range(rng.randint(10, 300))))
    return texts


def best_of(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = random.Random(7)
    document = english(rng, 100_000)
    corpus = mixed(rng, 5000)
    workloads = {
        "long English doc (100 KB)": [document],
        f"mixed texts ({len(corpus)}, {sum(len(t.encode()) for t in corpus) // 1000} KB)": corpus,
    }
    print("| encoding | workload | implementation | MB/s | Mtokens/s | speed-up |")
    print("|---|---|---|---:|---:|---:|")
    for name in NAMES:
        start = time.perf_counter()
        ours = tokenizer.load_encoding(name)
        load_ms = (time.perf_counter() - start) * 1000
        ref = reference(name)
        for label, texts in workloads.items():
            nbytes = sum(len(t.encode()) for t in texts)
            ntokens = sum(len(ref.encode_ordinary(t)) for t in texts)
            assert ntokens == sum(len(ours.encode(t)) for t in texts)
            runs = [
                ("tiktoken encode_ordinary", lambda: [ref.encode_ordinary(t) for t in texts]),
                ("fastgw encode", lambda: [ours.encode(t) for t in texts]),
                ("fastgw count", lambda: [ours.count(t) for t in texts]),
            ]
            base = None
            for impl, fn in runs:
                secs = best_of(fn, args.repeat)
                base = base or secs
                print(f"| {name} | {label} | {impl} | {nbytes / secs / 1e6:.1f} | {ntokens / secs / 1e6:.2f} | {base / secs:.1f}x |")
        print(f"| {name} | load rank file (first use) | fastgw | {load_ms:.0f} ms | | |")
    messages = [{"role": "system", "content": english(rng, 400)}] + [
        {"role": rng.choice(["user", "assistant"]), "content": english(rng, rng.randint(50, 1500))} for _ in range(20)]
    tokens.count_message_tokens("gpt-4o", messages)
    secs = best_of(lambda: [tokens.count_message_tokens("gpt-4o", messages) for _ in range(100)], args.repeat) / 100
    print(f"\ncount_message_tokens, 21 messages ({sum(len(m['content']) for m in messages) // 1000} KB): {secs * 1e6:.0f} us per call")


if __name__ == "__main__":
    main()
