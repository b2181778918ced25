"""Routing strategies: choose one deployment among the available ones of a group.

Each strategy is one pass over the candidates (O(deployments)), with no I/O. The router
has already removed cooling-down and excluded deployments; a strategy may still refuse
all of them (``usage-based-routing`` skips deployments at their rpm/tpm cap) by
returning ``None``.
"""
from __future__ import annotations

import random
from typing import Callable, Sequence

from .settings import RouterSettings
from .state import DeploymentState

Strategy = Callable[[Sequence[DeploymentState], bool, float], "DeploymentState | None"]


def weight_of(state: DeploymentState) -> float:
    params = state.deployment.params
    return float(params.weight or params.rpm or params.tpm or 1)


def _random_among(states: Sequence[DeploymentState], rng: random.Random) -> DeploymentState:
    return states[0] if len(states) == 1 else states[rng.randrange(len(states))]


def _lowest(candidates: Sequence[DeploymentState], score: Callable[[DeploymentState], float],
            rng: random.Random, tolerance: float = 0.0) -> DeploymentState:
    """The lowest-scoring candidate; ties (within ``tolerance`` of the best) broken at random."""
    scores = [score(s) for s in candidates]
    best = min(scores)
    limit = best + abs(best) * tolerance
    return _random_among([s for s, v in zip(candidates, scores) if v <= limit], rng)


def simple_shuffle(rng: random.Random) -> Strategy:
    """Random, weighted by ``weight`` (else ``rpm``, else ``tpm``, else evenly)."""
    def choose(candidates: Sequence[DeploymentState], stream: bool, now: float) -> DeploymentState:
        if len(candidates) == 1:
            return candidates[0]
        return rng.choices(candidates, [weight_of(s) for s in candidates])[0]
    return choose


def least_busy(rng: random.Random) -> Strategy:
    """Fewest requests in flight from this worker."""
    def choose(candidates: Sequence[DeploymentState], stream: bool, now: float) -> DeploymentState:
        return _lowest(candidates, lambda s: s.in_flight, rng)
    return choose


def latency_based(rng: random.Random, buffer: float, exploration: float) -> Strategy:
    """Lowest moving-average latency (time to first token for streams).

    Unmeasured deployments are tried first; a small ``exploration`` share of picks is
    random so a deployment that was slow once gets measured again.
    """
    def choose(candidates: Sequence[DeploymentState], stream: bool, now: float) -> DeploymentState:
        if len(candidates) == 1:
            return candidates[0]
        if exploration and rng.random() < exploration:
            return _random_among(candidates, rng)

        def score(s: DeploymentState) -> float:
            average = (s.ttft if stream and s.ttft.value is not None else s.latency).value
            return -1.0 if average is None else average
        return _lowest(candidates, score, rng, buffer)
    return choose


def usage_based(rng: random.Random) -> Strategy:
    """Most rpm/tpm headroom over the last minute; a deployment at its cap is skipped."""
    def choose(candidates: Sequence[DeploymentState], stream: bool, now: float) -> DeploymentState | None:
        open_ = [s for s in candidates if not s.at_capacity(now)]
        if not open_:
            return None
        return _lowest(open_, lambda s: s.utilisation(now), rng)
    return choose


def cost_based(rng: random.Random) -> Strategy:
    """Cheapest input+output price per token from ``model_info``; unpriced ones only if none is priced."""
    shuffle = simple_shuffle(rng)

    def choose(candidates: Sequence[DeploymentState], stream: bool, now: float) -> DeploymentState:
        priced = [s for s in candidates if s.price() is not None]
        if not priced:
            return shuffle(candidates, stream, now)  # type: ignore[return-value]
        return _lowest(priced, lambda s: s.price() or 0.0, rng)
    return choose


def build_strategy(settings: RouterSettings, rng: random.Random) -> Strategy:
    name = settings.routing_strategy
    if name == "least-busy":
        return least_busy(rng)
    if name == "latency-based-routing":
        return latency_based(rng, settings.lowest_latency_buffer, settings.exploration_rate)
    if name == "usage-based-routing":
        return usage_based(rng)
    if name == "cost-based-routing":
        return cost_based(rng)
    return simple_shuffle(rng)
