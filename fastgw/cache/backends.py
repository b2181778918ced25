"""Where cache entries live: an in-process LRU bounded in bytes, or Redis.

Both speak :class:`CacheBackend`. Backends raise on failure; the caller
(:class:`fastgw.cache.breaker.GuardedBackend`) turns failures into misses, so a backend
never decides whether a request fails.
"""
from __future__ import annotations

import time
from collections import OrderedDict
from typing import Protocol

DEFAULT_MAX_SIZE_BYTES = 64 * 1024 * 1024
_ENTRY_OVERHEAD = 64  # rough per-entry bookkeeping, so tiny entries still count


class CacheBackend(Protocol):
    name: str  # "local" | "redis": the metric label

    async def get(self, key: str) -> bytes | None: ...

    async def set(self, key: str, value: bytes, ttl: float | None) -> None: ...

    async def close(self) -> None: ...


class LocalLRUBackend:
    """Least-recently-used entries are evicted once the total size passes ``max_size_bytes``.

    Per process: with ``--workers N`` each worker has its own copy (use Redis to share).
    """

    name = "local"

    def __init__(self, max_size_bytes: int = DEFAULT_MAX_SIZE_BYTES) -> None:
        self.max_size_bytes = max_size_bytes
        self.size_bytes = 0
        self._entries: OrderedDict[str, tuple[float | None, bytes]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    async def get(self, key: str) -> bytes | None:
        item = self._entries.get(key)
        if item is None:
            return None
        expires_at, value = item
        if expires_at is not None and time.monotonic() >= expires_at:
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return value

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        cost = _cost(key, value)
        if cost > self.max_size_bytes:
            return  # would evict everything and still not fit
        if key in self._entries:
            self._remove(key)
        expires_at = time.monotonic() + ttl if ttl else None
        self._entries[key] = (expires_at, value)
        self.size_bytes += cost
        while self.size_bytes > self.max_size_bytes:
            oldest = next(iter(self._entries))
            self._remove(oldest)

    def _remove(self, key: str) -> None:
        _, value = self._entries.pop(key)
        self.size_bytes -= _cost(key, value)

    async def close(self) -> None:
        self._entries.clear()
        self.size_bytes = 0


def _cost(key: str, value: bytes) -> int:
    return len(key) + len(value) + _ENTRY_OVERHEAD


class RedisBackend:
    """Shared by every worker and instance pointed at the same Redis.

    Short socket timeouts and no client-side retries: a slow or dead Redis must cost a
    request at most one short timeout, and the circuit breaker stops even that.
    """

    name = "redis"

    def __init__(self, *, url: str | None = None, host: str = "127.0.0.1", port: int = 6379,
                 password: str | None = None, username: str | None = None, db: int = 0,
                 socket_timeout: float = 0.5) -> None:
        from redis.asyncio import Redis
        from redis.backoff import NoBackoff
        from redis.asyncio.retry import Retry

        retry = Retry(NoBackoff(), 0)
        if url:
            self._client = Redis.from_url(url, socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout,
                                          retry=retry, health_check_interval=0)
        else:
            self._client = Redis(host=host, port=port, password=password, username=username, db=db,
                                 socket_timeout=socket_timeout, socket_connect_timeout=socket_timeout, retry=retry,
                                 health_check_interval=0)

    async def get(self, key: str) -> bytes | None:
        value = await self._client.get(key)
        if value is None:
            return None
        return value if isinstance(value, bytes) else str(value).encode()

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        if ttl:
            await self._client.set(key, value, px=max(1, int(ttl * 1000)))
        else:
            await self._client.set(key, value)

    async def close(self) -> None:
        await self._client.aclose()
