"""Finished calls built in-process, for the observability sinks' unit tests."""
from __future__ import annotations

import time
from typing import Callable, Sequence

import pytest

from fastgw.auth import Principal
from fastgw.observability.attempts import UpstreamAttempt
from fastgw.pipeline import Call


def build_call(*, status: int = 200, error_type: str | None = None, stream: bool = False, cache_hit: bool = False,
               prompt: str = "hello there", alias: str | None = "team-a",
               attempts: Sequence[tuple[str | None, int]] = ((None, 200),), cost: float | None = 0.002) -> Call:
    call = Call(endpoint="chat.completions", body={"model": "gpt-4o-mini", "temperature": 0.5, "max_tokens": 50,
                                                   "messages": [{"role": "user", "content": prompt}]},
                model_group="gpt-4o-mini", principal=Principal("0" * 64, True), request_id="req-1", stream=stream)
    record = call.record
    record.status, record.error_type, record.latency_ms = status, error_type, 120.0
    record.key_alias, record.cost, record.cache_hit = alias, cost, cache_hit
    if stream:
        record.ttft_ms = 30.0
    if not cache_hit:
        now = time.time_ns()
        for number, (err, attempt_status) in enumerate(attempts):
            call.attempt_log.append(UpstreamAttempt("dep-1", "openai", "gpt-4o-mini-2024", now + number * 1000,
                                                    now + number * 1000 + 500, err, attempt_status))
        record.attempts = len(attempts)
        record.deployment_id, record.provider, record.upstream_model = "dep-1", "openai", "gpt-4o-mini-2024"
    record.prompt_tokens, record.completion_tokens = 24, 8
    call.completion = {"id": "chatcmpl-1", "choices": [{"index": 0, "finish_reason": "stop",
                                                        "message": {"role": "assistant", "content": "the answer"}}]}
    return call


@pytest.fixture
def make_call() -> Callable[..., Call]:
    return build_call
