"""Keep a failing cache backend off the request path.

A cache is an optimisation: when its backend fails the request is served uncached,
with a logged warning and a metric, never an error. After a few consecutive failures
the circuit opens and requests skip the backend entirely (no connect timeout per
request) until a single probe, after the cooldown, finds it working again.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Coroutine, Protocol

from .backends import CacheBackend

log = logging.getLogger("fastgw.cache")


class BackendFailureReporter(Protocol):
    def cache_backend_error(self, backend: str, operation: str) -> None: ...

    def cache_backend_skipped(self, backend: str, operation: str) -> None: ...


class CircuitBreaker:
    """closed -> (``failure_threshold`` consecutive failures) -> open -> (cooldown) -> one probe."""

    def __init__(self, failure_threshold: int = 3, cooldown: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.failure_threshold = failure_threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._open_until: float | None = None
        self._probing = False

    @property
    def state(self) -> str:
        if self._open_until is None:
            return "closed"
        return "half-open" if self._clock() >= self._open_until else "open"

    def allow(self) -> bool:
        """May a call go to the backend now? In half-open state only one probe at a time."""
        if self._open_until is None:
            return True
        if self._clock() < self._open_until or self._probing:
            return False
        self._probing = True
        return True

    def succeeded(self) -> None:
        self._failures = 0
        self._open_until = None
        self._probing = False

    def failed(self) -> bool:
        """Count a failure; True when this failure (re)opened the circuit."""
        self._failures += 1
        was_probe = self._probing
        self._probing = False
        if was_probe or self._failures >= self.failure_threshold:
            self._open_until = self._clock() + self.cooldown
            return True
        return False

    def abandoned(self) -> None:
        """A call was cancelled before it had a result: neither success nor failure."""
        self._probing = False


class GuardedBackend:
    """A backend whose failures become misses (``get`` -> None, ``set`` -> skipped)."""

    def __init__(self, backend: CacheBackend, breaker: CircuitBreaker, reporter: BackendFailureReporter,
                 timeout: float = 1.0) -> None:
        self.backend = backend
        self.breaker = breaker
        self.reporter = reporter
        self.timeout = timeout
        self.name = backend.name

    async def get(self, key: str) -> bytes | None:
        ok, value = await self._call("get", self.backend.get(key))
        return value if ok else None

    async def set(self, key: str, value: bytes, ttl: float | None) -> bool:
        ok, _ = await self._call("set", self.backend.set(key, value, ttl))
        return ok

    async def _call(self, operation: str, coro: Coroutine[Any, Any, Any]) -> tuple[bool, Any]:
        if not self.breaker.allow():
            coro.close()
            self.reporter.cache_backend_skipped(self.name, operation)
            return False, None
        settled = False
        try:
            result = await asyncio.wait_for(coro, self.timeout)
            settled = True
        except Exception as exc:  # any backend failure: the request goes on uncached
            settled = True
            self._failed(operation, exc)
            return False, None
        finally:
            if not settled:
                self.breaker.abandoned()
        self.breaker.succeeded()
        return True, result

    def _failed(self, operation: str, exc: Exception) -> None:
        self.reporter.cache_backend_error(self.name, operation)
        opened = self.breaker.failed()
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        if opened:
            log.warning("cache backend %s failed on %s (%s); serving uncached and skipping it for %.1fs",
                        self.name, operation, reason, self.breaker.cooldown)
        else:
            log.warning("cache backend %s failed on %s (%s); serving uncached", self.name, operation, reason)

    async def close(self) -> None:
        try:
            await self.backend.close()
        except Exception as exc:
            log.warning("cache backend %s did not close cleanly: %s", self.name, type(exc).__name__)
