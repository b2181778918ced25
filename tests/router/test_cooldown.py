"""The breaker: allowed_fails within a minute or a 429 cools a deployment; half-open probe after."""
from __future__ import annotations

import pytest

from fastgw.errors import GatewayError
from fastgw.router.cooldown import COOLING_DOWN, HALF_OPEN, HEALTHY, Cooldown
from fastgw.router.health import deployment_report


def server_error() -> GatewayError:
    return GatewayError(500, "upstream broke (key sk-secret-a)", "api_error", None, "server_error", retryable=True)


def test_fails_beyond_allowed_within_a_minute_cool_down():
    breaker = Cooldown(allowed_fails=2, cooldown_time=5)
    assert not breaker.on_failure(0.0, rate_limited=False)
    assert not breaker.on_failure(1.0, rate_limited=False)
    assert breaker.state(1.5) == HEALTHY
    assert breaker.on_failure(2.0, rate_limited=False)
    assert breaker.state(2.0) == COOLING_DOWN and not breaker.available(6.9)


def test_old_failures_leave_the_window():
    breaker = Cooldown(allowed_fails=1, cooldown_time=5)
    breaker.on_failure(0.0, rate_limited=False)
    assert not breaker.on_failure(61.0, rate_limited=False), "the first failure is more than a minute old"
    assert breaker.on_failure(62.0, rate_limited=False)


def test_rate_limit_cools_down_at_once():
    breaker = Cooldown(allowed_fails=3, cooldown_time=5)
    assert breaker.on_failure(0.0, rate_limited=True)
    assert not breaker.available(4.9)


def test_half_open_lets_one_probe_through():
    breaker = Cooldown(allowed_fails=0, cooldown_time=5)
    breaker.on_failure(0.0, rate_limited=False)
    assert breaker.state(5.0) == HALF_OPEN and breaker.available(5.0)
    assert breaker.on_pick(5.0), "the first pick after the cooldown is the probe"
    assert not breaker.available(5.1), "one probe at a time"
    breaker.on_success()
    assert breaker.state(5.2) == HEALTHY and breaker.available(5.2)


def test_failed_probe_cools_down_again_and_abandoned_probe_frees_the_slot():
    breaker = Cooldown(allowed_fails=3, cooldown_time=5)
    breaker.on_failure(0.0, rate_limited=True)
    breaker.on_pick(5.0)
    assert breaker.on_failure(5.5, rate_limited=False), "a failed probe re-trips regardless of allowed_fails"
    assert breaker.state(6.0) == COOLING_DOWN and breaker.available(10.5)
    breaker.on_pick(10.5)
    breaker.release()
    assert breaker.available(10.6)


def test_disabled_breaker_never_trips():
    breaker = Cooldown(allowed_fails=0, cooldown_time=5, enabled=False)
    assert not breaker.on_failure(0.0, rate_limited=True)
    assert breaker.available(0.1)


def test_router_cooldown_and_all_cooling_down_error(dep, make_router, clock):
    router = make_router([dep("a"), dep("b")], allowed_fails=0, cooldown_time=10)
    for dep_id in ("a", "b"):
        router.begin(router.states[dep_id]).fail(server_error())
    with pytest.raises(GatewayError) as info:
        router.select("g", False)
    assert info.value.status == 503 and info.value.code == "deployments_cooling_down"
    assert "cooling down" in info.value.message and info.value.headers["retry-after"] == "10"
    clock.advance(10)
    probe = router.begin(router.select("g", False))
    probe.succeed()
    assert router.states[probe.state.id].cooldown.state(clock()) == HEALTHY


def test_single_deployment_groups_are_never_cooled(dep, make_router):
    router = make_router([dep("only")], allowed_fails=0)
    router.begin(router.states["only"]).fail(GatewayError(429, "slow down", "rate_limit_error", None,
                                                          "rate_limit_exceeded", retryable=True))
    assert router.select("g", False).id == "only"


def test_client_errors_do_not_count(dep, make_router):
    router = make_router([dep("a"), dep("b")], allowed_fails=0)
    router.begin(router.states["a"]).fail(GatewayError(400, "too long", "invalid_request_error", None,
                                                       "context_length_exceeded"))
    assert router.states["a"].cooldown.state(0) == HEALTHY and router.states["a"].failures == 0


def test_health_report_has_states_and_no_secrets(dep, make_router):
    router = make_router([dep("a"), dep("b")], allowed_fails=0, cooldown_time=30)
    router.begin(router.states["a"]).fail(server_error())
    report = deployment_report(router)
    by_id = {d["id"]: d for d in report["deployments"]}
    assert by_id["a"]["state"] == COOLING_DOWN and by_id["a"]["cooling_down_until"] is not None
    assert by_id["a"]["last_error"].startswith("500 server_error") and by_id["b"]["state"] == HEALTHY
    assert report["healthy_count"] == 1 and report["unhealthy_count"] == 1
    assert "sk-secret" not in repr(report)
