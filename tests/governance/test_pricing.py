"""Cost from each provider's usage shape, hand-computed, cached and reasoning tokens included.

Each case runs the provider's own usage normaliser, then the usage record (what the log
stores), then the price: the same path a real request takes.
"""
from __future__ import annotations

import pytest

from fastgw.config.schema import Deployment, LitellmParams, ModelInfo
from fastgw.governance.pricing import (Price, PriceTable, Usage, cost_of, deployment_price, format_cost,
                                       worst_case_cost)
from fastgw.providers.anthropic.response import usage_to_openai
from fastgw.providers.bedrock.converse_response import openai_usage as bedrock_usage
from fastgw.providers.cohere.response import usage_from as cohere_usage
from fastgw.providers.gemini.response import usage_from as gemini_usage
from fastgw.usage import UsageRecord

M = 1e-6  # $ per token from $ per 1M tokens
TABLE = PriceTable.load()


def usage_of(openai_usage: dict) -> Usage:
    record = UsageRecord(ts=0.0, request_id="r", endpoint="chat.completions")
    record.set_usage(openai_usage)
    return Usage(record.prompt_tokens, record.completion_tokens, record.cached_tokens, record.cache_creation_tokens,
                 record.reasoning_tokens)


def price(provider: str, model: str) -> Price:
    found = TABLE.lookup(provider, model)
    assert found is not None, f"{provider}/{model} is not in the price table"
    return found


def test_openai_cached_and_reasoning():
    # o4-mini: $1.10 in, $0.275 cached, $4.40 out; reasoning is billed as output
    usage = usage_of({"prompt_tokens": 2000, "completion_tokens": 900, "total_tokens": 2900,
                      "prompt_tokens_details": {"cached_tokens": 1536},
                      "completion_tokens_details": {"reasoning_tokens": 640}})
    cost = cost_of(price("openai", "o4-mini-2025-04-16"), usage)
    assert cost.input_cost == pytest.approx(464 * 1.10 * M)
    assert cost.cache_read_cost == pytest.approx(1536 * 0.275 * M)
    assert cost.output_cost == pytest.approx(900 * 4.40 * M)
    assert cost.total == pytest.approx((464 * 1.10 + 1536 * 0.275 + 900 * 4.40) * M)


def test_anthropic_cache_read_and_write():
    # claude-sonnet-4: $3 in, $3.75 5m cache write, $0.30 cache read, $15 out
    raw = {"input_tokens": 100, "cache_creation_input_tokens": 2000, "cache_read_input_tokens": 5000,
           "output_tokens": 300}
    usage = usage_of(usage_to_openai(raw))
    assert usage.prompt_tokens == 7100 and usage.cached_tokens == 5000 and usage.cache_creation_tokens == 2000
    cost = cost_of(price("anthropic", "claude-sonnet-4-20250514"), usage)
    assert cost.input_cost == pytest.approx(100 * 3 * M)
    assert cost.cache_creation_cost == pytest.approx(2000 * 3.75 * M)
    assert cost.cache_read_cost == pytest.approx(5000 * 0.30 * M)
    assert cost.output_cost == pytest.approx(300 * 15 * M)
    assert cost.total == pytest.approx((300 + 7500 + 1500 + 4500) * M)


def test_anthropic_long_context_tier():
    usage = Usage(prompt_tokens=250_000, completion_tokens=1000)
    cost = cost_of(price("anthropic", "claude-sonnet-4-20250514"), usage)
    assert cost.total == pytest.approx((250_000 * 6 + 1000 * 22.5) * M), "past 200k the whole request is repriced"


def test_openai_long_context_tier_past_272k():
    gpt54 = price("openai", "gpt-5.4-2026-03-05")
    under = cost_of(gpt54, Usage(prompt_tokens=272_000, completion_tokens=1000))
    over = cost_of(gpt54, Usage(prompt_tokens=272_001, completion_tokens=1000))
    assert under.total == pytest.approx((272_000 * 2.5 + 1000 * 15) * M)
    assert over.total == pytest.approx((272_001 * 5 + 1000 * 22.5) * M)


def test_gemini_thoughts_and_cache():
    # gemini-2.5-flash: $0.30 in, $0.03 cached, $2.50 out (thinking included)
    raw = {"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 200,
           "thoughtsTokenCount": 800, "totalTokenCount": 2200}
    usage = usage_of(gemini_usage(raw))
    assert usage.completion_tokens == 1000 and usage.reasoning_tokens == 800 and usage.cached_tokens == 1000
    cost = cost_of(price("gemini", "gemini-2.5-flash"), usage)
    assert cost.total == pytest.approx((200 * 0.30 + 1000 * 0.03 + 1000 * 2.50) * M)


def test_gemini_pro_long_context():
    cost = cost_of(price("vertex_ai", "gemini-2.5-pro"), Usage(prompt_tokens=300_000, completion_tokens=100))
    assert cost.total == pytest.approx((300_000 * 2.5 + 100 * 15) * M)


def test_bedrock_claude_cache_write():
    raw = {"inputTokens": 50, "cacheReadInputTokens": 1000, "cacheWriteInputTokens": 400, "outputTokens": 20}
    usage = usage_of(bedrock_usage(raw))
    cost = cost_of(price("bedrock", "us.anthropic.claude-3-7-sonnet-20250219-v1:0"), usage)
    assert cost.total == pytest.approx((50 * 3 + 1000 * 0.30 + 400 * 3.75 + 20 * 15) * M)


def test_bedrock_nova():
    cost = cost_of(price("bedrock", "amazon.nova-pro-v1:0"), Usage(prompt_tokens=1000, completion_tokens=500))
    assert cost.total == pytest.approx((1000 * 0.8 + 500 * 3.2) * M)


def test_cohere():
    usage = usage_of(cohere_usage({"billed_units": {"input_tokens": 300, "output_tokens": 40},
                                   "tokens": {"input_tokens": 320, "output_tokens": 40}}))
    cost = cost_of(price("cohere", "command-r-plus-08-2024"), usage)
    assert cost.total == pytest.approx((usage.prompt_tokens * 2.5 + usage.completion_tokens * 10) * M)


def test_deepseek_cache_hit_field():
    usage = usage_of({"prompt_tokens": 1000, "completion_tokens": 100, "prompt_cache_hit_tokens": 600,
                      "prompt_cache_miss_tokens": 400})
    cost = cost_of(price("deepseek", "deepseek-chat"), usage)
    assert cost.total == pytest.approx((400 * 0.28 + 600 * 0.028 + 100 * 0.42) * M)


@pytest.mark.parametrize("provider,model,inp,out", [
    ("mistral", "mistral-large-latest", 0.5, 1.5),
    ("groq", "llama-3.3-70b-versatile", 0.59, 0.79),
    ("xai", "grok-3-mini", 0.30, 0.50),
    ("together_ai", "meta-llama/Llama-3.3-70B-Instruct-Turbo", 0.88, 0.88),
    ("fireworks_ai", "accounts/fireworks/models/deepseek-r1", 3.0, 8.0),
    ("openrouter", "anthropic/claude-sonnet-4.5", 3.0, 15.0),
    ("openrouter", "openai/gpt-4o-mini", 0.15, 0.60),
    ("azure", "gpt-4.1-mini", 0.40, 1.60),
    ("vertex_ai", "claude-opus-4-1@20250805", 15.0, 75.0),
])
def test_plain_prices(provider, model, inp, out):
    cost = cost_of(price(provider, model), Usage(prompt_tokens=1000, completion_tokens=100))
    assert cost.total == pytest.approx((1000 * inp + 100 * out) * M)


def test_lookup_boundaries():
    assert TABLE.lookup("openai", "gpt-4o-2024-05-13").input == pytest.approx(5.0 * M), "an older dearer snapshot"
    assert TABLE.lookup("openai", "gpt-4o-2024-08-06").input == pytest.approx(2.5 * M)
    assert TABLE.lookup("openai", "gpt-4o-mini").input == pytest.approx(0.15 * M)
    assert TABLE.lookup("openai", "gpt-4-0613").input == pytest.approx(30 * M)
    assert TABLE.lookup("openai", "gpt-4o-audio-preview") is not None  # priced as gpt-4o text
    assert TABLE.lookup("openai", "gpt-4x") is None, "no prefix match without a boundary"
    assert TABLE.lookup("cohere", "command-r-plus-08-2024").input == pytest.approx(2.5 * M), "a month-year snapshot"


@pytest.mark.parametrize("provider,model", [
    ("anthropic", "claude-opus-4-9"), ("anthropic", "claude-opus-4-9-20270101"), ("anthropic", "claude-sonnet-4-7"),
    ("openai", "gpt-5.7-terra"), ("openai", "gpt-5.9"), ("gemini", "gemini-2.7-flash"),
])
def test_a_newer_minor_version_is_unpriced_not_priced_as_its_family(provider, model):
    """"claude-opus-4-9" is not a snapshot of "claude-opus-4" (three times the price of the 4.5+
    models): until the table lists it, it is unpriced, which budgets refuse or allow by setting."""
    assert TABLE.lookup(provider, model) is None


@pytest.mark.parametrize("provider,model,inp,out,cached", [
    ("anthropic", "claude-opus-4-7", 5.0, 25.0, 0.5), ("anthropic", "claude-opus-4-8-20260301", 5.0, 25.0, 0.5),
    ("anthropic", "claude-sonnet-5-5", 2.0, 10.0, 0.2), ("anthropic", "claude-fable-5-1", 10.0, 50.0, 0.25),
    ("openai", "gpt-6.2-sol", 2.0, 10.0, 0.1), ("openai", "gpt-5.6-terra-2026-07-01", 2.0, 12.0, 0.2),
])
def test_models_released_in_2026_have_their_own_rows(provider, model, inp, out, cached):
    found = TABLE.lookup(provider, model)
    assert (found.input, found.output, found.cache_read) == pytest.approx((inp * M, out * M, cached * M))
    assert TABLE.lookup("hosted_vllm", "meta-llama/Llama-3.1-8B") is None
    assert TABLE.lookup("openrouter", "meta-llama/llama-3-8b") is None


def dep(provider: str, model: str, **info) -> Deployment:
    return Deployment(id="d", model_name="g", provider=provider, model=model,
                      params=LitellmParams(model=f"{provider}/{model}"), info=ModelInfo(**info), extra={})


def test_model_info_overrides_and_unpriced():
    assert deployment_price(dep("hosted_vllm", "llama"), TABLE) is None, "never $0 by default"
    own = deployment_price(dep("hosted_vllm", "llama", input_cost_per_token=1e-7, output_cost_per_token=2e-7), TABLE)
    assert own is not None and own.input == 1e-7 and own.output == 2e-7 and own.source == "model_info"
    assert deployment_price(dep("hosted_vllm", "llama", input_cost_per_token=1e-7), TABLE) is None, "half a price"
    embed = deployment_price(dep("hosted_vllm", "e5", input_cost_per_token=1e-8, mode="embedding"), TABLE)
    assert embed is not None and embed.output == 0.0
    mixed = deployment_price(dep("openai", "gpt-4o", cache_read_input_token_cost=1e-7, max_output_tokens=100), TABLE)
    assert mixed.input == pytest.approx(2.5 * M) and mixed.cache_read == 1e-7 and mixed.max_output_tokens == 100
    azure = deployment_price(dep("azure", "my-deployment", base_model="gpt-4o-mini"), TABLE)
    assert azure is not None and azure.input == pytest.approx(0.15 * M)
    assert deployment_price(dep("azure", "my-deployment"), TABLE) is None
    reasoning = deployment_price(dep("openai", "o3", output_cost_per_reasoning_token=1e-5), TABLE)
    cost = cost_of(reasoning, Usage(prompt_tokens=0, completion_tokens=100, reasoning_tokens=60))
    assert cost.output_cost == pytest.approx(40 * 8 * M + 60 * 1e-5)


def test_worst_case_and_format():
    p = price("anthropic", "claude-3-5-haiku-20241022")
    assert worst_case_cost(p, 1000, 100) == pytest.approx((1000 * 1.0 + 100 * 4.0) * M), "cache writes cost most"
    assert format_cost(0.000037) == "0.000037" and format_cost(0.0) == "0.0" and format_cost(12.5) == "12.5"
    assert "e" not in format_cost(1e-9)


def test_every_provider_row_is_dated():
    import json
    from importlib import resources

    data = json.loads(resources.files("fastgw").joinpath("data", "prices.json").read_text())
    for name, block in data["providers"].items():
        assert block["last_checked"] and block["source"], name
        for model, row in block["models"].items():
            assert row["input"] >= 0 and row.get("output", 0) >= 0, model
