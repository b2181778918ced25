"""Retry classification, backoff, fallback plans and router settings."""
from __future__ import annotations

import random

import pytest

from fastgw.errors import GatewayError, upstream_timeout, upstream_unreachable
from fastgw.providers.common import make_error
from fastgw.router.fallbacks import plan_for, take_request_fallbacks
from fastgw.router.policy import allows_fallback, blames_deployment, is_retryable, retry_delay
from fastgw.router.settings import RouterSettings, parse_router_settings


@pytest.mark.parametrize("err, retry", [
    (make_error(429, "slow down", headers={"retry-after": "2"}), True),
    (make_error(503, "overloaded"), True),
    (make_error(529, "overloaded"), True),
    (make_error(500, "boom"), True),
    (upstream_timeout("slow"), True),
    (upstream_unreachable("refused"), True),
    (GatewayError(502, "bad sse", "api_error", None, "malformed_stream", retryable=True), True),
    (make_error(400, "bad"), False),
    (make_error(401, "bad key"), False),
    (make_error(403, "forbidden"), False),
    (make_error(404, "no such model"), False),
    (make_error(429, "out of credits", code="insufficient_quota"), False),
    (make_error(400, "too long", code="context_length_exceeded"), False),
    (GatewayError(502, "bad api_base", "api_error", None, "config_error"), False),
])
def test_retry_classification(err, retry):
    assert is_retryable(err) is retry


def test_deployment_blame_and_fallback_eligibility():
    assert blames_deployment(make_error(401, "bad key")) and allows_fallback(make_error(401, "bad key"))
    assert blames_deployment(make_error(429, "no money", code="insufficient_quota"))
    bad_request = make_error(400, "messages[0] is wrong")
    assert not blames_deployment(bad_request) and not allows_fallback(bad_request)
    cooling = GatewayError(503, "all cooling", "api_error", None, "deployments_cooling_down")
    assert allows_fallback(cooling) and not blames_deployment(cooling)


def test_backoff_grows_with_jitter_and_is_capped():
    settings = RouterSettings(max_retry_delay=3.0)
    rng = random.Random(1)
    first = [retry_delay(1, None, settings, rng) for _ in range(200)]
    third = [retry_delay(3, None, settings, rng) for _ in range(200)]
    assert all(0.25 <= d <= 0.5 for d in first) and len(set(first)) > 100, "jittered"
    assert all(1.0 <= d <= 2.0 for d in third)
    assert all(d <= 3.0 for d in (retry_delay(9, None, settings, rng) for _ in range(100)))


def test_retry_after_is_honoured_up_to_the_cap():
    settings = RouterSettings(max_retry_delay=5.0, retry_after=0.2)
    rng = random.Random(1)
    assert retry_delay(1, 2.5, settings, rng) == 2.5
    assert retry_delay(1, 0.05, settings, rng) == 0.2, "router retry_after is a minimum"
    assert retry_delay(1, 30.0, settings, rng) is None, "beyond the cap: not worth waiting"


def test_fallback_plan_by_error_kind():
    settings = RouterSettings(fallbacks={"a": ["b"]}, context_window_fallbacks={"a": ["big"]},
                              default_fallbacks=["d"])
    plan = plan_for(settings, "a", {})
    assert plan.groups_for(make_error(500, "x")) == ["b"]
    assert plan.groups_for(make_error(400, "long", code="context_length_exceeded")) == ["big"]
    assert plan.groups_for(make_error(400, "policy", code="content_policy_violation")) == ["b"], \
        "no content_policy_fallbacks configured: the generic list applies"
    assert plan.groups_for(make_error(400, "bad param")) == []
    assert plan_for(settings, "other", {}).groups_for(make_error(500, "x")) == ["d"]


def test_request_fallbacks_are_taken_out_of_the_body():
    body = {"model": "a", "messages": [], "fallbacks": ["b", {"model": "c"}],
            "context_window_fallbacks": [{"a": ["c"]}]}
    overrides = take_request_fallbacks(body, "a", {"a", "b", "c"})
    assert "fallbacks" not in body and "context_window_fallbacks" not in body
    assert overrides == {"fallbacks": ["b", "c"], "context_window_fallbacks": ["c"]}
    with pytest.raises(GatewayError) as info:
        take_request_fallbacks({"fallbacks": ["nope"]}, "a", {"a"})
    assert info.value.status == 400 and info.value.param == "fallbacks"


def test_settings_from_either_section_and_errors():
    settings = parse_router_settings(
        {"routing_strategy": "least-busy", "num_retries": 1, "fallbacks": [{"a": ["b"]}]},
        {"num_retries": 5, "cooldown_time": 2, "context_window_fallbacks": [{"a": ["b"]}], "request_timeout": 30},
        {"background_health_checks": True, "health_check_interval": 60}, {"a", "b"})
    assert settings.num_retries == 1, "router_settings wins"
    assert settings.cooldown_time == 2 and settings.timeout == 30 and settings.fallbacks == {"a": ["b"]}
    assert settings.context_window_fallbacks == {"a": ["b"]} and settings.background_health_checks
    with pytest.raises(ValueError, match="router_settings.routing_strategy: unknown strategy"):
        parse_router_settings({"routing_strategy": "fastest"}, {}, {}, set())
    with pytest.raises(ValueError, match="litellm_settings.fallbacks.a: unknown model group 'zzz'"):
        parse_router_settings({}, {"fallbacks": [{"a": ["zzz"]}]}, {}, {"a"})
    with pytest.raises(ValueError, match="router_settings.num_retries"):
        parse_router_settings({"num_retries": -1}, {}, {}, set())


def test_config_loader_reports_router_setting_errors(tmp_path):
    from fastgw.config import ConfigError, load_config

    path = tmp_path / "config.yaml"
    path.write_text("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n"
                    "router_settings:\n  fallbacks: [{a: [missing]}]\n  num_retries: 1\n")
    with pytest.raises(ConfigError, match="router_settings.fallbacks.a: unknown model group 'missing'"):
        load_config(path, environ={})
    path.write_text("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n"
                    "router_settings: {routing_strategy: least-busy, cooldown_time: 1, stream_idle_timeout: 5}\n"
                    "litellm_settings: {num_retries: 0, default_fallbacks: [a]}\n")
    assert load_config(path, environ={}).warnings == [], "router settings are acted on, not reported as ignored"
