"""What a failed attempt means: retry it? blame the deployment? fall back? and how long to wait.

Decisions read only a GatewayError's ``status``, ``code``, ``retryable`` and
``retry_after``, which every provider fills in through ``providers.common.make_error``.
"""
from __future__ import annotations

import random

from ..errors import RETRYABLE_CODES, GatewayError
from .settings import RouterSettings

CONTEXT_WINDOW = "context_length_exceeded"
CONTENT_POLICY = "content_policy_violation"
QUOTA = "insufficient_quota"
COOLING_DOWN = "deployments_cooling_down"
AT_CAPACITY = "deployments_at_capacity"

BACKOFF_BASE = 0.5  # seconds before the first retry of the same deployment
# Statuses that the same request can never turn into a success by trying again.
NEVER_RETRY_STATUSES = frozenset({400, 401, 403, 404, 405, 409, 413, 422})
# Upstream statuses that say the deployment (its key, its model id, its account) is broken.
DEPLOYMENT_FAULT_STATUSES = frozenset({401, 403, 404})
# Stream problems that a fresh attempt may not have (providers mark them retryable).
_STREAM_CODES = frozenset({"malformed_stream", "stream_truncated", "bad_upstream_response"})


def is_retryable(err: GatewayError) -> bool:
    """Rate limits, overload, 5xx, connection errors and timeouts; never 4xx request errors or quota."""
    if err.status in NEVER_RETRY_STATUSES or err.code in (QUOTA, CONTEXT_WINDOW, CONTENT_POLICY):
        return False
    return err.retryable or err.code in RETRYABLE_CODES or err.code in _STREAM_CODES


def blames_deployment(err: GatewayError) -> bool:
    """Counts toward the deployment's cooldown (not the client's fault)."""
    if err.code in (CONTEXT_WINDOW, CONTENT_POLICY, COOLING_DOWN, AT_CAPACITY):
        return False
    return is_retryable(err) or err.status in DEPLOYMENT_FAULT_STATUSES or err.code in (QUOTA, "config_error")


def is_rate_limit(err: GatewayError) -> bool:
    return err.status == 429 and err.code != QUOTA


def allows_fallback(err: GatewayError) -> bool:
    """Generic fallbacks cover deployment faults and an unavailable group, not bad requests."""
    return blames_deployment(err) or err.code in (COOLING_DOWN, AT_CAPACITY)


def retry_delay(retry_number: int, retry_after: float | None, settings: RouterSettings,
                rng: random.Random) -> float | None:
    """Seconds to wait before retrying the same deployment; ``None``: not worth waiting.

    Exponential backoff with jitter (half fixed, half random) from ``BACKOFF_BASE``; a
    ``retry-after`` from the upstream is honoured as given when it is within
    ``max_retry_delay``, and a longer one means giving up on this deployment.
    """
    cap = settings.max_retry_delay
    if retry_after is not None:
        if retry_after > cap:
            return None
        return max(retry_after, settings.retry_after)
    ceiling = min(cap, BACKOFF_BASE * (2 ** max(0, retry_number - 1)))
    return max(settings.retry_after, ceiling / 2 + rng.uniform(0, ceiling / 2))
