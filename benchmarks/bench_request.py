"""Per-request cost of the chat fast path: parse, validate, read the routing fields, count the prompt.

Run: ``.venv/bin/python benchmarks/bench_request.py [--repeat N]`` (single thread, in process).

Two bodies: a ~100-token chat request and a ~20,000-token conversation. Each row adds one
stage to the previous one, so the differences are what each stage costs. "memo warm" is a
resent conversation (long strings' counts are memoised, see fastgw.tokens); "memo cold" pays
the BPE for every string, which dwarfs everything else on the long body.

The script follows whatever ``validation.validate_chat`` returns: ``None`` (the pure-Python
validators, which left the fields and the messages to be read again) or the compiled
``RequestInfo``; the same file therefore measured both sides of the change.
"""
from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout with the extensions built in place
    sys.path.insert(0, str(ROOT))

import orjson  # noqa: E402

from fastgw import tokens, validation  # noqa: E402
from fastgw.governance import budgets  # noqa: E402

MODEL = "gpt-4o-mini"
WORDS = ("the of and to in is that it was for on are as with his they at be this from have or by one had not but "
         "what all were when we there can an your which their said if do will each about how up out them then she "
         "many some so these would other into has more her two like him see time could make than first been its "
         "who now people my made over did down only way find use may water long little very after words called "
         "just where most know government information development however").split()


def english(rng: random.Random, size: int) -> str:
    out, n = [], 0
    while n < size:
        word = rng.choice(WORDS)
        if rng.random() < 0.1:
            word += rng.choice([",", ".", "?", "'s"])
        out.append(word)
        n += len(word) + 1
    return " ".join(out)[:size]


def small_body(rng: random.Random) -> bytes:
    return orjson.dumps({
        "model": MODEL, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 256,
        "temperature": 0.7,
        "messages": [{"role": "system", "content": "You are a helpful assistant. Answer briefly."},
                     {"role": "user", "content": english(rng, 330)}],
    })


def large_body(rng: random.Random) -> bytes:
    """A long agent conversation: prose turns, a tool call and its result, tool definitions."""
    messages: list[dict] = [{"role": "system", "content": english(rng, 2000)}]
    for turn in range(60):
        messages.append({"role": "user", "content": english(rng, 600)})
        if turn % 10 == 5:
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": f"call_{turn}", "type": "function",
                 "function": {"name": "search", "arguments": orjson.dumps({"q": english(rng, 60)}).decode()}}]})
            messages.append({"role": "tool", "tool_call_id": f"call_{turn}",
                             "content": [{"type": "text", "text": english(rng, 900)}]})
        messages.append({"role": "assistant", "content": english(rng, 700)})
    tools = [{"type": "function", "function": {"name": "search", "description": "Search the web",
                                                "parameters": {"type": "object", "required": ["q"],
                                                               "properties": {"q": {"type": "string"}}}}}]
    return orjson.dumps({"model": MODEL, "messages": messages, "tools": tools, "max_completion_tokens": 1024})


def validate_and_read(body: dict):
    """What ``routes.openai._serve`` does before governance: validate, then take the fields."""
    info = validation.validate_chat(body)
    if info is None:  # the pure-Python validators: the route read the dict again
        return None, (body["model"], bool(body.get("stream")),
                      bool((body.get("stream_options") or {}).get("include_usage")))
    return info, (info.model, info.stream, info.include_usage)


def count(body: dict, info) -> int:
    """``budgets.prompt_tokens`` as governance calls it during admission."""
    if info is None:
        return budgets.prompt_tokens("chat.completions", MODEL, body).tokens
    token = budgets.EXTRACTED.set(info)
    try:
        return budgets.prompt_tokens("chat.completions", MODEL, body).tokens
    finally:
        budgets.EXTRACTED.reset(token)


def stages(raw: bytes):
    def parse():
        orjson.loads(raw)

    def validate():
        validate_and_read(orjson.loads(raw))

    def counted():
        body = orjson.loads(raw)
        info, _ = validate_and_read(body)
        count(body, info)

    def cold():
        tokens._memo.clear()
        counted()

    return [("orjson.loads", parse), ("+ validate, read model/stream/include_usage", validate),
            ("+ prompt tokens (memo warm)", counted), ("+ prompt tokens (memo cold)", cold)]


def per_call_us(fn, repeat: int) -> float:
    loops = 1
    while True:  # size the loop to ~20 ms so timer resolution does not matter
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        if time.perf_counter() - start > 0.02:
            break
        loops *= 2
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(loops):
            fn()
        best = min(best, (time.perf_counter() - start) / loops)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(11)
    bodies = {"small": small_body(rng), "large": large_body(rng)}
    compiled = validation.validate_chat(orjson.loads(bodies["small"])) is not None
    print(f"validators: {'compiled (fastgw._core.request)' if compiled else 'pure Python'}; best of {args.repeat}")
    print("| body | prompt tokens | stage | us per call |")
    print("|---|---:|---|---:|")
    for name, raw in bodies.items():
        body = orjson.loads(raw)
        info, _ = validate_and_read(body)
        n = count(body, info)
        label = f"{name} ({len(raw) // 1000} KB, {len(body['messages'])} msgs)"
        for stage, fn in stages(raw):
            print(f"| {label} | {n} | {stage} | {per_call_us(fn, args.repeat):.1f} |")


if __name__ == "__main__":
    main()
