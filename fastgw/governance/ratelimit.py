"""Rate limits as GCRA (generic cell rate algorithm): one float of state per limit.

A limit of N per period lets a burst of N through at once and then one every
period/N, which is what "N requests per minute" means to a client, and its state (the
"theoretical arrival time") fits in one shared-memory slot, so all workers enforce one
limit instead of N.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

PERIOD = 60.0  # rpm and tpm are per minute
_EPS = 1e-9


@dataclass(frozen=True, slots=True)
class GcraResult:
    allowed: bool
    tat: float  # the new theoretical arrival time (apply it only if allowed)
    remaining: int  # what is left of the limit after this request (or before it, if refused)
    retry_after: float  # seconds until the request would fit (0 if allowed)
    impossible: bool = False  # the request alone is larger than the limit


def gcra(tat: float, now: float, cost: float, limit: int, period: float = PERIOD) -> GcraResult:
    """Would ``cost`` units fit under ``limit`` per ``period`` given the stored ``tat``?"""
    interval = period / limit
    base = max(tat, now)
    new_tat = base + cost * interval
    if new_tat - now <= period + _EPS:
        remaining = int(math.floor((period - (new_tat - now)) / interval + _EPS))
        return GcraResult(True, new_tat, max(0, remaining), 0.0)
    remaining = int(math.floor((period - (base - now)) / interval + _EPS))
    impossible = cost * interval > period + _EPS
    return GcraResult(False, tat, max(0, remaining), max(0.0, new_tat - now - period), impossible)


def remaining_after(tat: float, now: float, limit: int, period: float = PERIOD) -> int:
    """What is left of a limit right now, without spending any of it."""
    interval = period / limit
    return max(0, int(math.floor((period - (max(tat, now) - now)) / interval + _EPS)))


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up, at least 1 (clients sleep on it)."""
    return str(max(1, math.ceil(seconds)))
