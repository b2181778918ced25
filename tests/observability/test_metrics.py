"""Metrics from finished calls, read back through prometheus-client's own parser."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from fastgw.observability.metrics import LATENCY_BUCKETS, TTFT_BUCKETS, GatewayMetrics


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


def _exposition(registry: CollectorRegistry, names: tuple[str, ...]) -> list:
    """Samples by name and labels; sums rounded (added in another order), creation times left out."""
    return sorted((s.name, tuple(sorted(s.labels.items())), round(s.value, 9) if s.name.endswith("_sum") else s.value)
                  for family in text_string_to_metric_families(generate_latest(registry).decode())
                  for s in family.samples if s.name.startswith(names) and not s.name.endswith("_created"))


def test_summed_observations_export_what_prometheus_client_would(make_call):
    """The per-request sums (flushed per scrape) against prometheus-client's own observe()/inc()
    on the same values: latencies on, between, below and above the bucket bounds, TTFTs,
    tokens, fractional spend, flushed in several rounds."""
    metrics = GatewayMetrics()
    reference = CollectorRegistry()
    latency = Histogram("fastgw_request_latency_seconds", "", ["endpoint", "model_group"], buckets=LATENCY_BUCKETS,
                        registry=reference)
    ttft = Histogram("fastgw_time_to_first_token_seconds", "", ["model_group"], buckets=TTFT_BUCKETS,
                     registry=reference)
    requests = Counter("fastgw_requests", "", ["endpoint", "model_group", "deployment", "provider", "status",
                                               "key_alias"], registry=reference)
    spend = Counter("fastgw_spend_usd", "", ["model_group", "provider", "key_alias"], registry=reference)
    tokens = Counter("fastgw_tokens", "", ["model_group", "provider", "direction"], registry=reference)
    latencies_ms = [0.0, 4.9, 5.0, 5.1, 10.0, 99.9, 250.0, 1000.0, 599_999.0, 600_000.0, 600_001.0, 5e6, 33.3]
    for round_ in range(3):
        for number, ms in enumerate(latencies_ms):
            stream = number % 3 == 0
            call = make_call(stream=stream, status=200 if number % 4 else 429, cost=0.000123 * (number + 1))
            call.record.latency_ms = ms
            if stream:
                call.record.ttft_ms = ms / 7
            metrics.observe(call)
            labels = ("chat.completions", "gpt-4o-mini")
            latency.labels(*labels).observe(ms / 1000.0)
            if stream:
                ttft.labels("gpt-4o-mini").observe(ms / 7 / 1000.0)
            requests.labels(*labels, "dep-1", "openai", str(call.record.status), "team-a").inc()
            spend.labels("gpt-4o-mini", "openai", "team-a").inc(0.000123 * (number + 1))
            tokens.labels("gpt-4o-mini", "openai", "input").inc(24)
            tokens.labels("gpt-4o-mini", "openai", "output").inc(8)
        if round_ == 1:
            metrics.flush()  # a flush in between: the next round's sums add to what was handed over
    names = ("fastgw_request_latency", "fastgw_time_to_first", "fastgw_requests", "fastgw_tokens")
    assert _exposition(metrics.registry, names) == _exposition(reference, names)
    spent = value(metrics, "fastgw_spend_usd_total")
    assert abs(spent - 3 * sum(0.000123 * (n + 1) for n in range(len(latencies_ms)))) < 1e-12


def test_nothing_pending_is_lost_or_counted_twice(make_call):
    metrics = GatewayMetrics()
    metrics.observe(make_call())
    metrics.flush()
    metrics.flush()
    assert value(metrics, "fastgw_requests_total") == 1  # the scrape's own flush adds nothing more
    assert value(metrics, "fastgw_request_latency_seconds_count") == 1
    metrics.observe(make_call())
    assert value(metrics, "fastgw_requests_total") == 2  # a scrape sees a call observed after the last flush


def test_in_flight_is_read_when_collected():
    metrics = GatewayMetrics()
    metrics.in_flight.inc()
    metrics.in_flight.inc()
    assert value(metrics, "fastgw_in_flight_requests") == 2
    metrics.in_flight.dec()
    assert value(metrics, "fastgw_in_flight_requests") == 1
