"""Reservation math: exact prompt tokens x input price + max output x output price."""
from __future__ import annotations

import pytest

from fastgw.governance.budgets import (INEXACT_COUNT_MARGIN, PromptCount, exceeds, prompt_tokens, requested_output_tokens,
                                       reservation)
from fastgw.governance.pricing import DEFAULT_MAX_OUTPUT_TOKENS, Price
from fastgw.tokens import count_message_tokens

PRICE = Price(input=2e-6, output=8e-6, cache_read=0.5e-6, max_output_tokens=1000)


def test_exceeds():
    assert not exceeds(spend=5.0, reserved=2.0, reserve=3.0, max_budget=10.0)
    assert exceeds(spend=5.0, reserved=2.0, reserve=3.01, max_budget=10.0)
    assert exceeds(spend=10.0, reserved=0.0, reserve=0.0, max_budget=10.0), "a spent budget refuses even free calls"


def test_output_tokens():
    assert requested_output_tokens("chat.completions", {"max_tokens": 100}, PRICE) == 100
    assert requested_output_tokens("chat.completions", {"max_completion_tokens": 50, "n": 3}, PRICE) == 150
    assert requested_output_tokens("chat.completions", {"max_tokens": 5000}, PRICE) == 1000, "capped by the model"
    assert requested_output_tokens("chat.completions", {}, PRICE) == 1000, "no max_tokens: the model's cap"
    assert requested_output_tokens("chat.completions", {}, Price(1e-6, 1e-6)) == DEFAULT_MAX_OUTPUT_TOKENS
    assert requested_output_tokens("embeddings", {"max_tokens": 9}, PRICE) == 0


def test_reservation_is_worst_case_over_the_group():
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = prompt_tokens("chat.completions", "gpt-4o-mini", {"messages": messages})
    assert prompt == PromptCount(count_message_tokens("gpt-4o-mini", messages).tokens, True)
    body = {"messages": messages, "max_tokens": 100}
    dearer = Price(input=3e-6, output=15e-6, cache_write=3.75e-6, max_output_tokens=64000)
    expected = max(prompt.tokens * 2e-6 + 100 * 8e-6, prompt.tokens * 3.75e-6 + 100 * 15e-6)
    assert reservation([PRICE, dearer], "chat.completions", body, prompt) == pytest.approx(expected)


def test_inexact_counts_get_a_margin():
    prompt = PromptCount(1000, False)
    tokens = int(1000 * INEXACT_COUNT_MARGIN) + 1
    assert reservation([PRICE], "chat.completions", {"max_tokens": 10}, prompt) == pytest.approx(
        tokens * 2e-6 + 10 * 8e-6)


def test_embedding_and_completion_prompts():
    assert prompt_tokens("embeddings", "text-embedding-3-small", {"input": ["hello", "world"]}).tokens == 2
    assert prompt_tokens("embeddings", "text-embedding-3-small", {"input": [1, 2, 3]}).tokens == 3
    assert prompt_tokens("completions", "gpt-3.5-turbo-instruct", {"prompt": "hello world"}).tokens == 2
