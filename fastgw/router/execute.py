"""The retry and fallback loop around one request's attempts.

``execute`` runs ``attempt`` on deployments the router picks: a retryable failure is
retried (another deployment of the group first; the same one after a backoff that
honours its retry-after), then the fallback groups are tried in order, each with its
own retries. Nothing here writes to the client, so all of it stays invisible to it; the
attempt callable does the I/O and settles success, this loop settles failures.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Protocol, TypeVar

from ..config.schema import Deployment
from ..errors import GatewayError, upstream_timeout
from .fallbacks import FallbackPlan
from .policy import is_retryable, retry_delay
from .router import Lease, Router

T = TypeVar("T")


class Attempt(Protocol[T]):  # type: ignore[misc]
    def __call__(self, dep: Deployment, lease: Lease, budget: float) -> Awaitable[T]: ...


def seconds_left(deadline: float) -> float:
    """``deadline`` is a ``time.perf_counter()`` value."""
    return deadline - time.perf_counter()


async def execute(router: Router, group: str, stream: bool, plan: FallbackPlan, attempt: Attempt[T],
                  deadline: float, on_fallback: Callable[[str], None]) -> T:
    try:
        return await _in_group(router, group, stream, attempt, deadline)
    except GatewayError as err:
        last = err
        for fallback in plan.groups_for(err):
            if seconds_left(deadline) <= 0:
                break
            router.events.record_fallback(group, fallback, err.code or err.type)
            on_fallback(fallback)
            try:
                return await _in_group(router, fallback, stream, attempt, deadline)
            except GatewayError as fallback_err:
                last = fallback_err
        raise last


async def _in_group(router: Router, group: str, stream: bool, attempt: Attempt[T], deadline: float) -> T:
    settings = router.settings
    failed: dict[str, GatewayError] = {}  # deployment id -> its latest error in this request
    last: GatewayError | None = None
    for number in range(settings.num_retries + 1):
        try:
            state = router.select(group, stream, failed)
        except GatewayError as unavailable:
            raise last or unavailable  # our own failures cooled the group: report what happened
        previous = failed.get(state.id)
        if previous is not None:
            delay = retry_delay(number, previous.retry_after, settings, router.rng)
            if delay is None or delay >= seconds_left(deadline):
                raise previous
            await asyncio.sleep(delay)
            if not state.cooldown.available(router.clock()):
                continue  # cooled down by other requests while we waited: pick again
        budget = seconds_left(deadline)
        if budget <= 0:
            raise last or upstream_timeout(f"no answer from model '{group}' within the request timeout")
        lease = router.begin(state)
        try:
            return await attempt(state.deployment, lease, budget)
        except GatewayError as err:
            lease.fail(err)
            if not is_retryable(err):
                raise
            failed[state.id] = err
            last = err
            if number < settings.num_retries:
                router.events.record_retry(group, state.id, err.code or err.type)
        except BaseException:
            lease.release()
            raise
    assert last is not None
    raise last
