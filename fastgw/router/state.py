"""What the router knows about one deployment: load, latency, usage this minute, health.

Everything here is O(1) per update so routing decisions stay cheap; no I/O, no locks
(one event loop per worker process owns its router).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..config.schema import Deployment
from .cooldown import Cooldown

WINDOW_SECONDS = 60.0
EMA_ALPHA = 0.2  # weight of the newest latency sample


class MinuteWindow:
    """Requests and tokens over the last minute, as a sliding two-bucket estimate.

    The previous minute's count is weighted by how much of it still overlaps the
    sliding window, the usual rate-limiter approximation: O(1) memory and time.
    """

    __slots__ = ("_bucket", "_current", "_previous")

    def __init__(self) -> None:
        self._bucket = -1
        self._current = 0.0
        self._previous = 0.0

    def _roll(self, now: float) -> float:
        bucket = int(now // WINDOW_SECONDS)
        if bucket != self._bucket:
            self._previous = self._current if bucket == self._bucket + 1 else 0.0
            self._current = 0.0
            self._bucket = bucket
        return (now % WINDOW_SECONDS) / WINDOW_SECONDS

    def add(self, now: float, amount: float = 1.0) -> None:
        self._roll(now)
        self._current += amount

    def total(self, now: float) -> float:
        elapsed = self._roll(now)
        return self._current + self._previous * (1.0 - elapsed)


class MovingAverage:
    """Exponential moving average; ``None`` until the first sample."""

    __slots__ = ("value", "samples")

    def __init__(self) -> None:
        self.value: float | None = None
        self.samples = 0

    def add(self, sample: float) -> None:
        self.value = sample if self.value is None else self.value + EMA_ALPHA * (sample - self.value)
        self.samples += 1


@dataclass(slots=True)
class DeploymentState:
    deployment: Deployment
    cooldown: Cooldown
    in_flight: int = 0
    latency: MovingAverage = field(default_factory=MovingAverage)  # whole non-streaming call, seconds
    ttft: MovingAverage = field(default_factory=MovingAverage)  # stream time to first token, seconds
    requests: MinuteWindow = field(default_factory=MinuteWindow)
    tokens: MinuteWindow = field(default_factory=MinuteWindow)
    successes: int = 0
    failures: int = 0
    last_error: str | None = None
    last_error_at: float | None = None  # unix time
    last_check_at: float | None = None  # unix time of the last background health check
    last_check_ok: bool | None = None

    @property
    def id(self) -> str:
        return self.deployment.id

    def at_capacity(self, now: float) -> bool:
        """At its configured ``rpm`` / ``tpm`` for the last minute."""
        params = self.deployment.params
        if params.rpm is not None and self.requests.total(now) >= params.rpm:
            return True
        return params.tpm is not None and self.tokens.total(now) >= params.tpm

    def utilisation(self, now: float) -> float:
        """Share of the tighter of its rpm/tpm caps in use; 0 when it has none."""
        params = self.deployment.params
        used = 0.0
        if params.rpm:
            used = self.requests.total(now) / params.rpm
        if params.tpm:
            used = max(used, self.tokens.total(now) / params.tpm)
        return used

    def price(self) -> float | None:
        """Input plus output price per token, ``None`` when the deployment is unpriced."""
        info = self.deployment.info
        if info.input_cost_per_token is None and info.output_cost_per_token is None:
            return None
        return (info.input_cost_per_token or 0.0) + (info.output_cost_per_token or 0.0)
