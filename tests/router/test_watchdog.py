"""The stream watchdog: idle timeout, deadline, and no false alarm while sending to a slow client."""
from __future__ import annotations

import asyncio

from fastgw.router.watchdog import DEADLINE, IDLE, StreamWatchdog


async def _run(watchdog: StreamWatchdog, steps: list[tuple[str, float]]) -> str | None:
    async def body() -> None:
        watchdog.start()
        for kind, seconds in steps:
            if kind == "wait":  # waiting on the upstream
                await asyncio.sleep(seconds)
                watchdog.pause()
            else:  # busy sending to the client
                await asyncio.sleep(seconds)
                watchdog.touch()

    task = asyncio.ensure_future(body())
    try:
        await task
    except asyncio.CancelledError:
        pass
    finally:
        watchdog.stop()
    return watchdog.fired


async def test_quiet_upstream_trips_the_idle_timeout():
    assert await _run(StreamWatchdog(0.05), [("wait", 0.01), ("send", 0.0), ("wait", 0.3)]) == IDLE


async def test_steady_stream_and_slow_client_do_not_trip():
    steps = [("wait", 0.02), ("send", 0.15)] * 2
    assert await _run(StreamWatchdog(0.08), steps) is None


async def test_deadline_ends_a_busy_stream():
    loop = asyncio.get_running_loop()
    steps = [("wait", 0.02), ("send", 0.0)] * 20
    assert await _run(StreamWatchdog(10.0, loop.time() + 0.1), steps) == DEADLINE


async def test_stopped_watchdog_never_fires():
    watchdog = StreamWatchdog(0.05)
    watchdog.start()
    watchdog.stop()
    await asyncio.sleep(0.15)
    assert watchdog.fired is None
