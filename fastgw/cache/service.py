"""The response cache one gateway process owns: settings, backend, lookups and stores."""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Mapping, Protocol

from .backends import LocalLRUBackend, RedisBackend
from .breaker import BackendFailureReporter, CircuitBreaker, GuardedBackend
from .entry import CacheEntry, decode_entry, encode_entry
from .keys import cache_key
from .policy import CachePlan, CacheSettings, decide, parse_cache_settings, take_control

log = logging.getLogger("fastgw.cache")


class CacheMetrics(BackendFailureReporter, Protocol):
    def cache_lookup(self, model_group: str, hit: bool) -> None: ...


class ResponseCache:
    def __init__(self, settings: CacheSettings | None, metrics: CacheMetrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.backend: GuardedBackend | None = None
        self._pending: set[asyncio.Task] = set()  # background stores, awaited at shutdown
        if settings is not None:
            self.backend = GuardedBackend(_backend_for(settings),
                                          CircuitBreaker(settings.failure_threshold, settings.failure_cooldown),
                                          metrics, timeout=max(1.0, settings.socket_timeout * 2))

    @classmethod
    def from_litellm_settings(cls, litellm_settings: Mapping[str, Any], metrics: CacheMetrics) -> "ResponseCache":
        return cls(parse_cache_settings(litellm_settings), metrics)

    def plan(self, endpoint: str, model_group: str, body: dict, cache_control: str | None) -> CachePlan | None:
        """Strip the body's ``cache`` control (always) and decide; None when the cache does not apply."""
        control = take_control(body)
        settings = self.settings
        if settings is None or endpoint not in settings.endpoints:
            return None
        return decide(settings, lambda namespace: cache_key(namespace, endpoint, model_group, body), control,
                      cache_control)

    async def lookup(self, plan: CachePlan, endpoint: str, model_group: str) -> CacheEntry | None:
        """The entry to serve, or None; never raises (a broken cache is a miss)."""
        entry = None
        try:
            if plan.read and self.backend is not None:
                data = await self.backend.get(plan.key)
                entry = decode_entry(data) if data is not None else None
                if entry is not None and (entry.endpoint != endpoint or
                                          (plan.max_age is not None and entry.age() > plan.max_age)):
                    entry = None
        except Exception:
            log.exception("cache lookup failed; serving uncached")
            entry = None
        self.metrics.cache_lookup(model_group, entry is not None)
        return entry

    async def store(self, plan: CachePlan, endpoint: str, response: dict) -> None:
        """Keep an answer; never raises (the client's answer matters more than the copy)."""
        if not plan.write or self.backend is None:
            return
        try:
            await self._write(plan, encode_entry(endpoint, response))
        except Exception:
            log.exception("cache store failed; the answer was served but not kept")

    def store_later(self, plan: CachePlan, endpoint: str, response: dict) -> None:
        """For callers that cannot wait (a stream's encoder). The entry is encoded now, so later
        changes to ``response`` do not leak into it; the write task is tracked until done."""
        if not plan.write or self.backend is None:
            return
        try:
            data = encode_entry(endpoint, response)
        except Exception:
            log.exception("cache store failed; the answer was served but not kept")
            return
        task = asyncio.get_running_loop().create_task(self._write(plan, data))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _write(self, plan: CachePlan, data: bytes) -> None:
        assert self.backend is not None
        await self.backend.set(plan.key, data, plan.ttl)

    async def close(self, timeout: float = 5.0) -> None:
        if self._pending:
            await asyncio.wait(set(self._pending), timeout=timeout)
        if self.backend is not None:
            await self.backend.close()


def _backend_for(settings: CacheSettings) -> LocalLRUBackend | RedisBackend:
    if settings.type == "redis":
        redis = settings.redis
        assert redis is not None
        return RedisBackend(url=redis.url, host=redis.host, port=redis.port, password=redis.password,
                            username=redis.username, db=redis.db, socket_timeout=settings.socket_timeout)
    return LocalLRUBackend(settings.max_size_bytes)
