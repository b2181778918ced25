"""The local LRU (bounded in bytes, TTL) and the Redis backend against the real server."""
from __future__ import annotations

import uuid

import pytest

from fastgw.cache import backends
from fastgw.cache.backends import LocalLRUBackend, RedisBackend


async def test_local_get_set_and_overwrite():
    cache = LocalLRUBackend(10_000)
    assert await cache.get("k") is None
    await cache.set("k", b"v1", None)
    await cache.set("k", b"v2", None)
    assert await cache.get("k") == b"v2" and len(cache) == 1


async def test_local_is_bounded_in_bytes_and_evicts_least_recently_used():
    entry = b"x" * 100
    per_entry = len("k0") + len(entry) + backends._ENTRY_OVERHEAD
    cache = LocalLRUBackend(per_entry * 3)
    for name in ("k0", "k1", "k2"):
        await cache.set(name, entry, None)
    assert await cache.get("k0") == entry  # k0 is now the most recently used
    await cache.set("k3", entry, None)
    assert await cache.get("k1") is None, "the least recently used entry went first"
    assert {k for k in ("k0", "k2", "k3") if await cache.get(k)} == {"k0", "k2", "k3"}
    assert cache.size_bytes <= cache.max_size_bytes


async def test_local_skips_an_entry_larger_than_the_whole_cache():
    cache = LocalLRUBackend(100)
    await cache.set("small", b"s", None)
    await cache.set("huge", b"x" * 1000, None)
    assert await cache.get("huge") is None and await cache.get("small") == b"s"


async def test_local_ttl_expiry(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(backends.time, "monotonic", lambda: now[0])
    cache = LocalLRUBackend(10_000)
    await cache.set("k", b"v", 10)
    await cache.set("forever", b"v", None)
    now[0] += 9.9
    assert await cache.get("k") == b"v"
    now[0] += 0.2
    assert await cache.get("k") is None and cache.size_bytes > 0
    assert await cache.get("forever") == b"v"


@pytest.fixture
async def redis_namespace():
    import redis.asyncio as redis

    namespace = f"fastgw-test-{uuid.uuid4().hex}"
    yield namespace
    client = redis.Redis(host="127.0.0.1", port=6379)
    keys = [k async for k in client.scan_iter(f"{namespace}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_redis_backend_against_the_real_server(redis_namespace):
    cache = RedisBackend(host="127.0.0.1", port=6379)
    try:
        key = f"{redis_namespace}:abc"
        assert await cache.get(key) is None
        await cache.set(key, b"\x00payload", 30)
        assert await cache.get(key) == b"\x00payload"
        pttl = await cache._client.pttl(key)
        assert 0 < pttl <= 30_000
    finally:
        await cache.close()


async def test_redis_backend_from_url(redis_namespace):
    cache = RedisBackend(url="redis://127.0.0.1:6379/0")
    try:
        await cache.set(f"{redis_namespace}:u", b"v", None)
        assert await cache.get(f"{redis_namespace}:u") == b"v"
    finally:
        await cache.close()
