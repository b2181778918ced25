"""Routing strategies: distributions, load, latency, usage caps, cost, cooled deployments skipped."""
from __future__ import annotations

from collections import Counter

import pytest

from fastgw.errors import GatewayError

PICKS = 6000


def picks(router, n: int = PICKS, stream: bool = False) -> Counter:
    return Counter(router.select("g", stream).id for _ in range(n))


def test_simple_shuffle_follows_weights(dep, make_router):
    router = make_router([dep("a", weight=1), dep("b", weight=3)])
    share = picks(router)["b"] / PICKS
    assert share == pytest.approx(0.75, abs=0.03)


def test_simple_shuffle_falls_back_to_rpm_then_even(dep, make_router):
    router = make_router([dep("a", rpm=100), dep("b", rpm=300)])
    assert picks(router)["b"] / PICKS == pytest.approx(0.75, abs=0.03)
    router = make_router([dep("a"), dep("b"), dep("c")])
    counts = picks(router)
    assert all(counts[d] / PICKS == pytest.approx(1 / 3, abs=0.03) for d in "abc")


def test_least_busy_picks_fewest_in_flight(dep, make_router):
    router = make_router([dep("a"), dep("b"), dep("c")], routing_strategy="least-busy")
    leases = [router.begin(router.states["a"]), router.begin(router.states["a"]), router.begin(router.states["b"])]
    assert {router.select("g", False).id for _ in range(50)} == {"c"}
    for lease in leases:
        lease.release()
    assert {router.select("g", False).id for _ in range(200)} == {"a", "b", "c"}, "ties are broken at random"


def test_latency_based_prefers_fastest_and_explores(dep, make_router, clock):
    router = make_router([dep("fast"), dep("slow")], routing_strategy="latency-based-routing",
                         exploration_rate=0.1)
    for dep_id, seconds in (("fast", 0.1), ("slow", 1.0)):
        lease = router.begin(router.states[dep_id])
        clock.advance(seconds)
        lease.succeed()
    counts = picks(router)
    assert counts["fast"] / PICKS == pytest.approx(0.95, abs=0.02), "90% best + half of the 10% exploration"
    assert counts["slow"] > 0


def test_latency_based_measures_unmeasured_first_and_uses_ttft_for_streams(dep, make_router, clock):
    router = make_router([dep("a"), dep("b")], routing_strategy="latency-based-routing",
                         exploration_rate=0.0)
    lease = router.begin(router.states["a"])
    clock.advance(0.5)
    lease.succeed()
    assert router.select("g", False).id == "b", "b has no sample yet"
    lease = router.begin(router.states["b"])
    clock.advance(0.1)
    lease.first_token()  # quick first token, long stream
    clock.advance(5.0)
    lease.succeed(streamed=True)
    assert router.select("g", True).id == "b"


def test_usage_based_skips_capped_deployments(dep, make_router):
    router = make_router([dep("small", rpm=2), dep("big", rpm=1000)], routing_strategy="usage-based-routing")
    for _ in range(2):
        router.begin(router.states["small"]).succeed()
    assert {router.select("g", False).id for _ in range(100)} == {"big"}


def test_usage_based_tpm_cap_and_all_capped(dep, make_router):
    router = make_router([dep("a", tpm=100), dep("b", tpm=100)], routing_strategy="usage-based-routing")
    router.begin(router.states["a"]).succeed(tokens=60)
    assert router.select("g", False).id == "b", "most headroom"
    router.begin(router.states["a"]).succeed(tokens=60)
    router.begin(router.states["b"]).succeed(tokens=100)
    with pytest.raises(GatewayError) as info:
        router.select("g", False)
    assert info.value.status == 429 and info.value.code == "deployments_at_capacity"


def test_usage_window_slides(dep, make_router, clock):
    router = make_router([dep("a", rpm=1), dep("b", rpm=1000)], routing_strategy="usage-based-routing")
    router.begin(router.states["a"]).succeed()
    assert router.select("g", False).id == "b"
    clock.advance(125)
    assert "a" in {router.select("g", False).id for _ in range(50)}


def test_cost_based_picks_cheapest_priced(dep, make_router):
    router = make_router([dep("pricey", input_cost=1e-5, output_cost=3e-5),
                          dep("cheap", input_cost=1e-7, output_cost=4e-7),
                          dep("unpriced")], routing_strategy="cost-based-routing")
    assert {router.select("g", False).id for _ in range(100)} == {"cheap"}


def test_cooled_deployments_are_skipped(dep, make_router):
    router = make_router([dep("a"), dep("b")], allowed_fails=0, cooldown_time=30)
    lease = router.begin(router.states["a"])
    lease.fail(GatewayError(500, "boom", "api_error", None, "server_error", retryable=True))
    assert set(picks(router, 300)) == {"b"}


def test_select_prefers_deployments_not_tried_yet(dep, make_router):
    router = make_router([dep("a"), dep("b")])
    assert {router.select("g", False, avoid={"a"}).id for _ in range(50)} == {"b"}
    assert {router.select("g", False, avoid={"a", "b"}).id for _ in range(50)} == {"a", "b"}
