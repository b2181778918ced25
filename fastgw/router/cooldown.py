"""Circuit breaker for one deployment: closed -> cooling down -> half-open -> closed.

A deployment that fails more than ``allowed_fails`` times within a minute, or answers
429, is taken out of rotation for ``cooldown_time`` seconds. After that one request is
let through as a probe (half-open): success closes the breaker, failure cools it down
again at once. Times are ``time.monotonic()`` seconds passed in by the caller.
"""
from __future__ import annotations

from collections import deque

from .settings import FAIL_WINDOW_SECONDS

HEALTHY = "healthy"
COOLING_DOWN = "cooling_down"
HALF_OPEN = "half_open"


class Cooldown:
    __slots__ = ("allowed_fails", "cooldown_time", "enabled", "_fails", "cooling_until", "probing", "tripped")

    def __init__(self, allowed_fails: int, cooldown_time: float, enabled: bool = True) -> None:
        self.allowed_fails = allowed_fails
        self.cooldown_time = cooldown_time
        self.enabled = enabled
        self._fails: deque[float] = deque(maxlen=allowed_fails + 1)
        self.cooling_until = 0.0
        self.tripped = False  # cooled down at least once since the last success
        self.probing = False  # a half-open probe is in flight

    def state(self, now: float) -> str:
        if not self.tripped:
            return HEALTHY
        return COOLING_DOWN if now < self.cooling_until else HALF_OPEN

    def available(self, now: float) -> bool:
        """Can take a request now (a half-open breaker takes one probe at a time)."""
        if not self.tripped:
            return True
        return now >= self.cooling_until and not self.probing

    def on_pick(self, now: float) -> bool:
        """Note a pick; True when it is the half-open probe."""
        if self.tripped and now >= self.cooling_until:
            self.probing = True
            return True
        return False

    def on_success(self) -> None:
        self._fails.clear()
        self.tripped = False
        self.probing = False
        self.cooling_until = 0.0

    def on_failure(self, now: float, rate_limited: bool) -> bool:
        """Count a failure; True when this failure (re)started a cooldown."""
        if not self.enabled:
            return False
        was_probe = self.tripped and now >= self.cooling_until
        self.probing = False
        self._fails.append(now)
        while self._fails and now - self._fails[0] > FAIL_WINDOW_SECONDS:
            self._fails.popleft()
        if was_probe or rate_limited or len(self._fails) > self.allowed_fails:
            self.tripped = True
            self.cooling_until = now + self.cooldown_time
            self._fails.clear()
            return True
        return False

    def release(self) -> None:
        """The probe ended without a verdict (client went away): let another probe through."""
        self.probing = False
