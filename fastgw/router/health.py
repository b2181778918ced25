"""Deployment health: the ``GET /health`` report and optional background checks.

The report shows what the router knows (state, cooldown end, last error, load) and
nothing secret: no keys, no credentials, error text with the deployment's key masked.
Background checks (``general_settings.background_health_checks``) send each deployment a
one-token request every ``health_check_interval`` seconds; the outcome feeds the same
breaker as real traffic, so a dead deployment is cooled down before clients hit it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from ..config.schema import Deployment
from ..errors import GatewayError, upstream_timeout
from ..usage import UsageRecord
from .cooldown import COOLING_DOWN
from .router import Router
from .state import DeploymentState

if TYPE_CHECKING:
    from ..gateway import Gateway

log = logging.getLogger("fastgw.health")

CHECK_TIMEOUT = 30.0


def deployment_report(router: Router) -> dict:
    now = router.clock()
    wall = time.time()
    items = [_one(state, now, wall) for states in router.groups.values() for state in states]
    healthy = sum(1 for item in items if item["state"] != COOLING_DOWN)
    return {"healthy_count": healthy, "unhealthy_count": len(items) - healthy, "deployments": items}


def _one(state: DeploymentState, now: float, wall: float) -> dict:
    cooldown = state.cooldown
    status = cooldown.state(now)
    item = {
        **state.deployment.public_dict(),
        "state": status,
        "cooling_down_until": wall + (cooldown.cooling_until - now) if status == COOLING_DOWN else None,
        "in_flight": state.in_flight,
        "successes": state.successes,
        "failures": state.failures,
        "last_error": state.last_error,
        "last_error_at": state.last_error_at,
        "latency_ms": None if state.latency.value is None else round(state.latency.value * 1000, 1),
        "ttft_ms": None if state.ttft.value is None else round(state.ttft.value * 1000, 1),
    }
    if state.last_check_at is not None:
        item["last_check_at"] = state.last_check_at
        item["last_check_ok"] = state.last_check_ok
    return item


class HealthChecker:
    """Background task checking every deployment periodically (one worker-local loop)."""

    def __init__(self, gw: "Gateway") -> None:
        self.gw = gw
        self.interval = gw.router.settings.health_check_interval
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="fastgw-health-checks")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def _run(self) -> None:
        while True:
            states = list(self.gw.router.states.values())
            await asyncio.gather(*(self.check(state) for state in states), return_exceptions=True)
            await asyncio.sleep(self.interval)

    async def check(self, state: DeploymentState) -> None:
        gw = self.gw
        dep = state.deployment
        lease = gw.router.begin(state)
        record = UsageRecord(ts=time.time(), request_id=f"health-{dep.id}-{int(time.time())}", endpoint="health_check",
                             model_group=dep.model_name, deployment_id=dep.id, provider=dep.provider,
                             upstream_model=dep.model, attempts=1)
        started = time.perf_counter()
        try:
            usage = await asyncio.wait_for(_probe(gw, dep), CHECK_TIMEOUT)
        except asyncio.TimeoutError:
            usage, error = None, upstream_timeout(f"health check of {dep.id} timed out")
        except GatewayError as err:
            usage, error = None, err
        except Exception as exc:  # a broken check must not stop the loop
            usage, error = None, GatewayError(502, f"health check failed ({type(exc).__name__})", "api_error")
        else:
            error = None
        record.latency_ms = (time.perf_counter() - started) * 1000
        record.set_usage(usage)
        state.last_check_at = time.time()
        state.last_check_ok = error is None
        if error is None:
            lease.succeed(record.prompt_tokens + record.completion_tokens)
            record.status = 200
        else:
            lease.fail(error)
            record.status = error.status
            record.error_type = error.code or error.type
            log.warning("health check of deployment %s failed: %s", dep.id, state.last_error or error.code)
        gw.usage_log.record(record)


async def _probe(gw: "Gateway", dep: Deployment) -> dict | None:
    """A one-token request; returns its usage."""
    provider = gw.providers[dep.provider]
    embedding = dep.info.mode == "embedding"
    if embedding:
        request = provider.embeddings_request(dep, {"model": dep.model_name, "input": "ping"})
    else:
        request = provider.chat_request(dep, {"model": dep.model_name, "max_tokens": 1,
                                              "messages": [{"role": "user", "content": "ping"}]}, False)
    response = await gw.transport_for(provider).send(request, connect_timeout=10.0, read_timeout=CHECK_TIMEOUT)
    try:
        data = await response.read()
    finally:
        response.close()
    if response.status >= 400:
        raise provider.error(response.status, response.headers, data[:65536])
    if embedding:
        result = provider.embeddings_response(dep, data, {"input": "ping"})
    else:
        result = provider.chat_response(dep, data)
    usage = result.get("usage")
    return usage if isinstance(usage, dict) else None
