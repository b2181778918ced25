"""The event loop's busy poller: polls while there is activity, sleeps after a quiet window,
and hands the core (and the GIL) over on every step that finds the loop idle, never on one
that follows other work."""
from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time

import pytest
import uvloop

from fastgw._core.busypoll import GAP, BusyPoll


def run(main):
    return uvloop.run(main())


async def until_stopped(poller: BusyPoll, limit: float = 2.0) -> float:
    """Seconds until the poller stops by itself (the test's own waits are asyncio sleeps of
    0, each shorter than the poller's gap, so they do not count as activity)."""
    began = time.monotonic()
    while poller.active:
        assert time.monotonic() - began < limit, "the poller never stopped"
        await asyncio.sleep(0)
    return time.monotonic() - began


def test_a_kick_polls_then_the_loop_sleeps_again():
    async def main() -> None:
        poller = BusyPoll(asyncio.get_running_loop(), 0.002)
        assert not poller.active and poller.steps == 0
        poller.kick()
        assert poller.active and poller.kicks == 1
        await until_stopped(poller)
        steps = poller.steps
        assert steps >= 1
        await asyncio.sleep(0.02)  # the loop sleeps: no more steps
        assert poller.steps == steps and not poller.active

    run(main)


def test_activity_keeps_it_polling_and_a_kick_while_active_does_not_schedule_twice():
    async def main() -> None:
        loop = asyncio.get_running_loop()
        poller = BusyPoll(loop, 0.005)  # longer than a step's yield to a busy process takes
        poller.kick()
        busy_until = time.monotonic() + 0.05  # 10 windows of activity

        def work() -> None:  # other callbacks, each longer than the gap
            end = time.perf_counter() + 3 * GAP
            while time.perf_counter() < end:
                pass
            if time.monotonic() < busy_until:
                loop.call_soon(work)

        loop.call_soon(work)
        while time.monotonic() < busy_until:
            assert poller.active, "stopped while other work kept running"
            poller.kick()
            await asyncio.sleep(0)
        assert poller.kicks == 1
        await until_stopped(poller)

    run(main)


def test_window_zero_never_polls():
    async def main() -> None:
        poller = BusyPoll(asyncio.get_running_loop(), 0.0)
        poller.kick()
        await asyncio.sleep(0.01)
        assert not poller.active and poller.steps == 0 and poller.kicks == 0

    run(main)


@pytest.mark.parametrize("window, gap", [(-1e-6, GAP), (1e-3, 0.0)])
def test_bad_arguments(window, gap):
    async def main() -> None:
        with pytest.raises(ValueError):
            BusyPoll(asyncio.get_running_loop(), window, gap)

    run(main)


def test_each_step_hands_the_core_to_an_idle_priority_thread():
    """On one core, an idle-priority thread (as the usage writer is) gets turns while the
    loop polls: each step yields. With the yield taken out of the step, this test failed
    here (the polling thread never blocks, so an idle-priority thread has no idle core)."""
    cpu = min(os.sched_getaffinity(0))
    previous_affinity = os.sched_getaffinity(0)
    turns = [0]
    ready = threading.Event()
    stop = threading.Event()
    block = os.urandom(1 << 16)

    def other() -> None:
        os.sched_setaffinity(0, {cpu})
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
        ready.set()
        while not stop.is_set():
            hashlib.sha256(block).digest()  # ~0.1 ms without the GIL
            turns[0] += 1

    async def main() -> tuple[int, int]:
        poller = BusyPoll(asyncio.get_running_loop(), 0.05)
        before = turns[0]
        poller.kick()
        await until_stopped(poller, limit=5.0)  # sleep(0) never blocks: only the steps yield the core
        return turns[0] - before, poller.steps

    os.sched_setaffinity(0, {cpu})
    thread = threading.Thread(target=other)
    thread.start()
    try:
        ready.wait(5)
        others, steps = run(main)
    finally:
        stop.set()
        thread.join()
        os.sched_setaffinity(0, previous_affinity)
    assert steps > 0 and others >= 20, (others, steps)


class _RecordingLoop:
    """Stands in for the loop: records what the poller schedules, runs nothing."""

    def __init__(self) -> None:
        self.scheduled: list[object] = []

    def call_soon(self, callback: object) -> None:
        self.scheduled.append(callback)


def test_a_step_after_other_work_polls_again_without_yielding():
    """The loop is mid-request when other callbacks ran since the last step: handing the core
    to the writer there delayed the request (time to first byte +18 us p50 at c=1). With the
    yield on every step, as before, this test fails."""
    loop = _RecordingLoop()
    poller = BusyPoll(loop, 0.05)
    poller.kick()
    assert loop.scheduled == [poller]
    time.sleep(3 * GAP)  # another callback ran for longer than the gap
    poller()
    assert poller.active and poller.steps == 0, "a step after other work yielded"
    assert loop.scheduled == [poller, poller]  # still polling
    poller()  # straight after: nothing else ran, the loop is idle
    assert poller.steps == 1 and loop.scheduled == [poller, poller, poller]


def test_busy_steps_extend_the_window():
    loop = _RecordingLoop()
    poller = BusyPoll(loop, 4 * GAP)
    poller.kick()
    for _ in range(6):  # 6 x 3 gaps of work: longer than the window, all of it busy
        time.sleep(3 * GAP)
        poller()
        assert poller.active
    assert poller.steps == 0
    began = time.monotonic()
    while poller.active:  # then idle: it stops one window later
        assert time.monotonic() - began < 2.0
        poller()
    assert poller.steps >= 1
