"""Realistic mixed traffic for fastgw (locust; not a fastgw dependency).

Many virtual keys, a mix of models, streaming and non-streaming chat completions, prompts
from 100 to 20,000 tokens (log-uniform, so most are short and some are long), a few
embeddings. ``benchmarks/run.py --locust`` installs the pinned locust into the venv, starts
the mock upstream and the gateway, and runs this headless; by hand:

    locust -f benchmarks/locustfile.py --headless -u 200 -r 50 -t 60s \\
        --host http://127.0.0.1:4000 --csv /tmp/fastgw-locust

Environment:
    FASTGW_MASTER_KEY   creates FASTGW_BENCH_KEY_COUNT virtual keys (default 200) at start
    FASTGW_BENCH_KEYS   or: a file with one key per line (used as they are)
    FASTGW_BENCH_MODELS model groups with weights, "name:weight,..." (default
                        "gpt-4o-mini:6,gpt-4o:3,claude-sonnet:1")
    FASTGW_BENCH_STREAM_SHARE  share of streaming requests (default 0.5)
    FASTGW_BENCH_MIN_TOKENS / FASTGW_BENCH_MAX_TOKENS  prompt size range (100 / 20000)

Streams are reported twice: "chat stream" (whole stream) and "chat stream TTFB" (time to
the first ``data:`` line). Each user waits 0-200 ms between requests (wait_time).
"""
from __future__ import annotations

import json
import math
import os
import random
import time
import urllib.request
from typing import Any

from locust import FastHttpUser, between, events, task

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which but have an "
         "they you were her all she there would their we him been has when who will more no if out so said what up "
         "its about into than them can only other new some could time these two may then do first any my now such "
         "like our over man me even most made after also did many before must through back years where much your "
         "way well down should because each just those people how too little state good very make world still own "
         "see men work long get here between both life being under never day same another know while last might us "
         "great old year off come since against go came right used take three").split()

_keys: list[str] = []
_models: list[str] = []
_weights: list[float] = []
_text = ""
_offsets: list[int] = []  # _offsets[n] = length of the first n words of _text


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


STREAM_SHARE = _env_float("FASTGW_BENCH_STREAM_SHARE", 0.5)
MIN_TOKENS = int(_env_float("FASTGW_BENCH_MIN_TOKENS", 100))
MAX_TOKENS = int(_env_float("FASTGW_BENCH_MAX_TOKENS", 20000))


def _build_text(max_words: int) -> None:
    global _text, _offsets
    rng = random.Random(7)
    words = [" " + rng.choice(WORDS) for _ in range(max_words)]
    _offsets = [0]
    for word in words:
        _offsets.append(_offsets[-1] + len(word))
    _text = "".join(words)


def _create_keys(host: str, master: str, count: int) -> list[str]:
    keys = []
    for i in range(count):
        body = json.dumps({"key_alias": f"locust-{i}-{time.time_ns()}", "max_budget": 1_000_000.0,
                           "rpm_limit": 100_000_000, "tpm_limit": 10_000_000_000}).encode()
        request = urllib.request.Request(host.rstrip("/") + "/key/generate", data=body, method="POST",
                                         headers={"Authorization": f"Bearer {master}",
                                                  "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                keys.append(json.loads(response.read())["key"])
        except Exception as exc:  # noqa: BLE001 - no governance: use the master key
            print(f"locustfile: /key/generate failed ({exc}); using the master key")
            return [master]
    return keys


@events.test_start.add_listener
def _setup(environment: Any, **_: Any) -> None:
    global _keys, _models, _weights
    keys_file = os.environ.get("FASTGW_BENCH_KEYS")
    if keys_file and os.path.exists(keys_file):
        _keys = [line.strip() for line in open(keys_file) if line.strip()]
    elif os.environ.get("FASTGW_MASTER_KEY"):
        _keys = _create_keys(environment.host, os.environ["FASTGW_MASTER_KEY"],
                             int(os.environ.get("FASTGW_BENCH_KEY_COUNT", "200")))
    if not _keys:
        _keys = [""]
    spec = os.environ.get("FASTGW_BENCH_MODELS", "gpt-4o-mini:6,gpt-4o:3,claude-sonnet:1")
    _models, _weights = [], []
    for item in spec.split(","):
        name, _, weight = item.strip().partition(":")
        if name:
            _models.append(name)
            _weights.append(float(weight or 1))
    _build_text(MAX_TOKENS)
    print(f"locustfile: {len(_keys)} key(s), models {dict(zip(_models, _weights))}, stream share {STREAM_SHARE}, "
          f"prompts {MIN_TOKENS}-{MAX_TOKENS} tokens")


def _prompt_words() -> int:
    """Log-uniform between MIN_TOKENS and MAX_TOKENS (one word is about one token)."""
    low, high = math.log(MIN_TOKENS), math.log(MAX_TOKENS)
    return min(MAX_TOKENS, int(math.exp(random.uniform(low, high))))


class GatewayUser(FastHttpUser):
    wait_time = between(0.0, 0.2)
    connection_timeout = 30.0
    network_timeout = 120.0

    def _headers(self) -> dict[str, str]:
        key = random.choice(_keys) if _keys else ""
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _body(self, stream: bool) -> bytes:
        words = _prompt_words()
        start = random.randrange(0, max(1, len(_offsets) - words))
        content = _text[_offsets[start]:_offsets[start + words]] if _offsets else "hello"
        body: dict[str, Any] = {"stream": stream} if stream else {}
        body.update({"model": random.choices(_models, _weights)[0] if _models else "gpt-4o-mini",
                     "messages": [{"role": "system", "content": "You are a concise assistant."},
                                  {"role": "user", "content": content}],
                     "max_tokens": random.choice((64, 256, 1024))})
        if stream:
            body["stream_options"] = {"include_usage": True}
        return json.dumps(body).encode()

    @task(10)
    def chat(self) -> None:
        if random.random() < STREAM_SHARE:
            self._stream()
            return
        with self.client.post("/v1/chat/completions", data=self._body(False), headers=self._headers(),
                              name="chat", catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {(response.text or '')[:200]}")
            elif b'"choices"' not in (response.content or b""):
                response.failure("no choices in the response")

    def _stream(self) -> None:
        start = time.perf_counter()
        first = None
        size = 0
        failure = None
        with self.client.post("/v1/chat/completions", data=self._body(True), headers=self._headers(),
                              name="chat stream", stream=True, catch_response=True) as response:
            if response.status_code != 200:
                failure = f"HTTP {response.status_code}"
                response.failure(failure)
            else:
                tail = b""
                for chunk in response.stream:
                    if first is None and b"data:" in chunk:
                        first = time.perf_counter()
                    size += len(chunk)
                    tail = (tail + chunk)[-64:]
                if b"[DONE]" not in tail:
                    failure = "stream ended without [DONE]"
                    response.failure(failure)
        if first is not None:
            events.request.fire(request_type="POST", name="chat stream TTFB", response_time=(first - start) * 1000,
                                response_length=size, exception=None, context={})

    @task(1)
    def embeddings(self) -> None:
        # The mock answers every path with its chat JSON, so only the round trip is measured here;
        # skipped unless an embeddings model is configured.
        model = os.environ.get("FASTGW_BENCH_EMBEDDINGS_MODEL")
        if not model:
            return
        body = json.dumps({"model": model, "input": _text[:2000]}).encode()
        self.client.post("/v1/embeddings", data=body, headers=self._headers(), name="embeddings")
