"""A failing backend becomes misses; the circuit keeps a dead backend off the request path."""
from __future__ import annotations

import asyncio
import socket

from fastgw.cache.backends import RedisBackend
from fastgw.cache.breaker import CircuitBreaker, GuardedBackend


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Reporter:
    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []
        self.skipped: list[tuple[str, str]] = []

    def cache_backend_error(self, backend: str, operation: str) -> None:
        self.errors.append((backend, operation))

    def cache_backend_skipped(self, backend: str, operation: str) -> None:
        self.skipped.append((backend, operation))


class FlakyBackend:
    name = "flaky"

    def __init__(self) -> None:
        self.broken = True
        self.calls = 0
        self.data: dict[str, bytes] = {}

    async def get(self, key: str) -> bytes | None:
        self.calls += 1
        if self.broken:
            raise ConnectionError("refused")
        return self.data.get(key)

    async def set(self, key: str, value: bytes, ttl: float | None) -> None:
        self.calls += 1
        if self.broken:
            raise ConnectionError("refused")
        self.data[key] = value

    async def close(self) -> None:
        pass


def test_breaker_opens_after_threshold_then_probes_once():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=2, cooldown=5, clock=clock)
    assert breaker.allow() and not breaker.failed()
    assert breaker.allow() and breaker.failed(), "second consecutive failure opens"
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 5.0
    assert breaker.state == "half-open"
    assert breaker.allow(), "one probe after the cooldown"
    assert not breaker.allow(), "only one probe at a time"
    assert breaker.failed() and breaker.state == "open", "a failed probe reopens at once"
    clock.now = 10.0
    assert breaker.allow()
    breaker.succeeded()
    assert breaker.state == "closed" and breaker.allow()


def test_abandoned_probe_does_not_wedge_the_breaker():
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cooldown=1, clock=clock)
    breaker.failed()
    clock.now = 2
    assert breaker.allow()
    breaker.abandoned()
    assert breaker.allow()


async def test_guarded_backend_turns_failures_into_misses_and_skips_when_open():
    clock = Clock()
    backend, reporter = FlakyBackend(), Reporter()
    guarded = GuardedBackend(backend, CircuitBreaker(2, 5, clock), reporter)
    assert await guarded.get("k") is None
    assert await guarded.set("k", b"v", None) is False
    assert reporter.errors == [("flaky", "get"), ("flaky", "set")]
    calls = backend.calls
    assert await guarded.get("k") is None
    assert backend.calls == calls, "open circuit: the backend is not called at all"
    assert reporter.skipped == [("flaky", "get")]
    backend.broken = False
    clock.now = 6
    assert await guarded.set("k", b"v", None) is True, "the probe succeeds and closes the circuit"
    assert await guarded.get("k") == b"v"


async def test_cancelled_call_releases_the_probe():
    class Hanging(FlakyBackend):
        async def get(self, key: str) -> bytes | None:
            await asyncio.sleep(10)
            return None

    breaker = CircuitBreaker(1, 0.0)
    breaker.failed()
    guarded = GuardedBackend(Hanging(), breaker, Reporter())
    task = asyncio.ensure_future(guarded.get("k"))
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert breaker.allow(), "a cancelled probe is neither success nor failure"


async def test_hanging_backend_is_bounded_by_the_timeout():
    class Hanging(FlakyBackend):
        async def get(self, key: str) -> bytes | None:
            await asyncio.sleep(10)
            return None

    reporter = Reporter()
    guarded = GuardedBackend(Hanging(), CircuitBreaker(3, 5), reporter, timeout=0.05)
    assert await guarded.get("k") is None
    assert reporter.errors == [("flaky", "get")]


async def test_redis_where_nothing_listens_is_a_miss_not_an_error():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    reporter = Reporter()
    guarded = GuardedBackend(RedisBackend(host="127.0.0.1", port=port, socket_timeout=0.2),
                             CircuitBreaker(2, 60), reporter)
    try:
        for _ in range(5):
            assert await guarded.get("k") is None
            await guarded.set("k", b"v", 10)
        assert len(reporter.errors) == 2, "after two failures the circuit is open"
        assert len(reporter.skipped) == 8
    finally:
        await guarded.close()
