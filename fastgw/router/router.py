"""The Router: per-deployment state for one worker process, and the pick for each attempt.

Built once in ``Gateway.from_config``. ``select`` chooses a deployment of a group (skipping
cooling-down ones, preferring ones this request has not tried yet); ``begin`` returns a
:class:`Lease` that the pipeline settles with the attempt's outcome, which feeds the
strategies (load, latency, usage) and the cooldown breaker.
"""
from __future__ import annotations

import math
import random
import time
from typing import Callable, Collection, Iterable, Protocol

from ..config.schema import Deployment
from ..errors import GatewayError
from .cooldown import Cooldown
from .policy import AT_CAPACITY, COOLING_DOWN, blames_deployment, is_rate_limit
from .settings import DEFAULT_TIMEOUT, RouterSettings
from .state import DeploymentState
from .strategies import build_strategy

MAX_ERROR_TEXT = 200


class RouterEvents(Protocol):
    """Where the router reports what it did (``GatewayMetrics`` implements it)."""

    def record_retry(self, model_group: str, deployment_id: str, reason: str) -> None: ...

    def record_fallback(self, from_model_group: str, to_model_group: str, reason: str) -> None: ...

    def record_cooldown(self, model_group: str, deployment_id: str, reason: str) -> None: ...

    def set_cooling_down(self, model_group: str, deployment_id: str, cooling: bool) -> None: ...


class NoEvents:
    def record_retry(self, model_group: str, deployment_id: str, reason: str) -> None:
        pass

    def record_fallback(self, from_model_group: str, to_model_group: str, reason: str) -> None:
        pass

    def record_cooldown(self, model_group: str, deployment_id: str, reason: str) -> None:
        pass

    def set_cooling_down(self, model_group: str, deployment_id: str, cooling: bool) -> None:
        pass


class Router:
    def __init__(self, deployments: Iterable[Deployment], settings: RouterSettings, *,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None,
                 events: RouterEvents | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self.events: RouterEvents = events or NoEvents()
        by_group: dict[str, list[Deployment]] = {}
        for dep in deployments:
            by_group.setdefault(dep.model_name, []).append(dep)
        self.groups: dict[str, list[DeploymentState]] = {}
        self.states: dict[str, DeploymentState] = {}
        for name, deps in by_group.items():
            # Cooling down the only deployment of a group would turn one failure into an outage.
            enabled = not settings.disable_cooldowns and len(deps) > 1
            states = [DeploymentState(d, Cooldown(settings.allowed_fails, settings.cooldown_time, enabled))
                      for d in deps]
            self.groups[name] = states
            self.states.update((s.id, s) for s in states)
        self.strategy = build_strategy(settings, self.rng)

    # picking --------------------------------------------------------------------------
    def select(self, group: str, stream: bool, avoid: Collection[str] = ()) -> DeploymentState:
        """A deployment for the next attempt; raises 503 when all are cooling down."""
        now = self.clock()
        states = self.groups.get(group)
        if not states:
            raise GatewayError(404, f"The model '{group}' does not exist or you do not have access to it.",
                               "invalid_request_error", "model", "model_not_found")
        available = [s for s in states if s.cooldown.available(now)]
        if not available:
            raise self._cooling_down(group, states, now)
        fresh = [s for s in available if s.id not in avoid] if avoid else available
        choice = self.strategy(fresh or available, stream, now)
        if choice is None and fresh and len(fresh) < len(available):
            choice = self.strategy(available, stream, now)
        if choice is None:
            raise GatewayError(429, f"All deployments of model '{group}' are at their rpm/tpm limits; retry shortly.",
                               "rate_limit_error", None, AT_CAPACITY, {"retry-after": "1"})
        return choice

    def begin(self, state: DeploymentState) -> "Lease":
        now = self.clock()
        state.in_flight += 1
        state.requests.add(now)
        return Lease(self, state, now, state.cooldown.on_pick(now))

    def _cooling_down(self, group: str, states: list[DeploymentState], now: float) -> GatewayError:
        wait = max(0.0, min(s.cooldown.cooling_until for s in states) - now)
        message = f"All {len(states)} deployments of model '{group}' are cooling down after failures; " \
                  f"retry in {wait:.1f}s."
        return GatewayError(503, message, "api_error", None, COOLING_DOWN, {"retry-after": str(max(1, math.ceil(wait)))})

    # timeouts -------------------------------------------------------------------------
    def request_timeout(self) -> float:
        """Budget for all attempts of one request up to its response (or a stream's first token)."""
        return self.settings.timeout or DEFAULT_TIMEOUT

    def attempt_timeout(self, dep: Deployment) -> float:
        return dep.params.timeout or self.settings.timeout or DEFAULT_TIMEOUT

    def first_token_timeout(self, dep: Deployment) -> float:
        return dep.params.stream_timeout or self.settings.stream_timeout or self.attempt_timeout(dep)

    def idle_timeout(self, dep: Deployment) -> float:
        return self.settings.stream_idle_timeout or self.attempt_timeout(dep)


class Lease:
    """One attempt on one deployment; settled exactly once (later calls are no-ops)."""

    __slots__ = ("router", "state", "started", "probe", "open")

    def __init__(self, router: Router, state: DeploymentState, started: float, probe: bool) -> None:
        self.router = router
        self.state = state
        self.started = started
        self.probe = probe
        self.open = True

    def first_token(self) -> None:
        self.state.ttft.add(self.router.clock() - self.started)

    def succeed(self, tokens: int = 0, *, streamed: bool = False) -> None:
        if not self._close():
            return
        state = self.state
        now = self.router.clock()
        if not streamed:
            state.latency.add(now - self.started)
        if tokens:
            state.tokens.add(now, tokens)
        state.successes += 1
        self._close_breaker()

    def fail(self, err: GatewayError, tokens: int = 0) -> None:
        if not self._close():
            return
        state = self.state
        now = self.router.clock()
        if tokens:
            state.tokens.add(now, tokens)
        if not blames_deployment(err):
            if self.probe:
                self._close_breaker()  # it answered: the request was at fault, not the deployment
            return
        state.failures += 1
        state.last_error = _error_text(err, state.deployment)
        state.last_error_at = time.time()
        if state.cooldown.on_failure(now, is_rate_limit(err)):
            events = self.router.events
            events.record_cooldown(state.deployment.model_name, state.id, err.code or err.type)
            events.set_cooling_down(state.deployment.model_name, state.id, True)

    def release(self) -> None:
        """Ended without a verdict (the client went away)."""
        if self._close() and self.probe:
            self.state.cooldown.release()

    def _close_breaker(self) -> None:
        cooldown = self.state.cooldown
        if cooldown.tripped:
            self.router.events.set_cooling_down(self.state.deployment.model_name, self.state.id, False)
        cooldown.on_success()

    def _close(self) -> bool:
        if not self.open:
            return False
        self.open = False
        self.state.in_flight -= 1
        return True


def _error_text(err: GatewayError, dep: Deployment) -> str:
    message = err.message[:MAX_ERROR_TEXT]
    for secret in (dep.params.api_key, dep.params.aws_secret_access_key, dep.params.aws_session_token):
        if secret and len(secret) >= 4:
            message = message.replace(secret, "***")
    return f"{err.status} {err.code or err.type}: {message}"
