"""Metrics from finished calls, read back through prometheus-client's own parser."""
from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fastgw.observability.metrics import GatewayMetrics


def samples(metrics: GatewayMetrics) -> list:
    text = generate_latest(metrics.registry).decode()
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def value(metrics: GatewayMetrics, name: str, **labels: str) -> float:
    return sum(s.value for s in samples(metrics)
               if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def test_requests_latency_tokens_spend(make_call):
    metrics = GatewayMetrics()
    metrics.observe(make_call())
    metrics.observe(make_call(stream=True))
    metrics.observe(make_call(status=429, error_type="rate_limit_exceeded", attempts=[("rate_limit_exceeded", 429)],
                              cost=None))
    assert value(metrics, "fastgw_requests_total", status="200", model_group="gpt-4o-mini", deployment="dep-1",
                 provider="openai", key_alias="team-a", endpoint="chat.completions") == 2
    assert value(metrics, "fastgw_requests_total", status="429") == 1
    assert value(metrics, "fastgw_request_latency_seconds_count", model_group="gpt-4o-mini") == 3
    assert value(metrics, "fastgw_request_latency_seconds_sum") == 0.36
    assert value(metrics, "fastgw_time_to_first_token_seconds_count") == 1
    assert value(metrics, "fastgw_tokens_total", direction="input") == 72
    assert value(metrics, "fastgw_tokens_total", direction="output") == 24
    assert abs(value(metrics, "fastgw_spend_usd_total", key_alias="team-a") - 0.004) < 1e-12
    assert value(metrics, "fastgw_upstream_errors_total", error_type="rate_limit_exceeded", deployment="dep-1") == 1


def test_cache_hit_counts_the_request_but_no_tokens_or_spend(make_call):
    metrics = GatewayMetrics()
    metrics.observe(make_call(cache_hit=True))
    metrics.cache_lookup("gpt-4o-mini", True)
    metrics.cache_lookup("gpt-4o-mini", False)
    assert value(metrics, "fastgw_requests_total", deployment="", status="200") == 1
    assert value(metrics, "fastgw_tokens_total") == 0 and value(metrics, "fastgw_spend_usd_total") == 0
    assert value(metrics, "fastgw_cache_hits_total", model_group="gpt-4o-mini") == 1
    assert value(metrics, "fastgw_cache_misses_total", model_group="gpt-4o-mini") == 1


def test_retried_attempts_each_count_as_upstream_errors(make_call):
    metrics = GatewayMetrics()
    metrics.observe(make_call(attempts=[("overloaded", 529), ("timeout", 504), (None, 200)]))
    assert value(metrics, "fastgw_upstream_errors_total") == 2
    assert value(metrics, "fastgw_upstream_errors_total", error_type="timeout") == 1


def test_client_disconnect_is_not_an_upstream_error(make_call):
    metrics = GatewayMetrics()
    metrics.observe(make_call(status=499, error_type="client_disconnected", attempts=[("client_disconnected", 499)]))
    assert value(metrics, "fastgw_upstream_errors_total") == 0
    assert value(metrics, "fastgw_requests_total", status="499") == 1


def test_router_api_and_usage_log_state():
    metrics = GatewayMetrics()
    metrics.record_retry("g", "dep-1", "rate_limit_exceeded")
    metrics.record_retry("g", "dep-1", "rate_limit_exceeded")
    metrics.record_fallback("g", "backup", "context_length_exceeded")
    metrics.record_cooldown("g", "dep-1", "allowed_fails")
    metrics.set_cooling_down("g", "dep-1", True)
    metrics.usage_log_state(7, 3)
    metrics.usage_log_state(2, 5)
    assert value(metrics, "fastgw_retries_total", model_group="g", deployment="dep-1") == 2
    assert value(metrics, "fastgw_fallbacks_total", from_model_group="g", to_model_group="backup") == 1
    assert value(metrics, "fastgw_deployment_cooldowns_total", reason="allowed_fails") == 1
    assert value(metrics, "fastgw_deployment_cooling_down", deployment="dep-1") == 1
    assert value(metrics, "fastgw_usage_log_queue_depth") == 2
    assert value(metrics, "fastgw_usage_log_dropped_rows_total") == 5


def test_two_gateways_in_one_process_have_separate_registries(make_call):
    first, second = GatewayMetrics(), GatewayMetrics()
    first.observe(make_call())
    assert value(first, "fastgw_requests_total") == 1 and value(second, "fastgw_requests_total") == 0


def test_labels_never_carry_keys_or_prompts(make_call):
    metrics = GatewayMetrics()
    metrics.observe(make_call(prompt="my secret prompt"))
    text = generate_latest(metrics.registry).decode()
    assert "secret prompt" not in text and "0" * 64 not in text
