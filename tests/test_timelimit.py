"""``fastgw.timelimit.time_limit`` behaves as ``asyncio.timeout`` does where the pipeline uses it."""
from __future__ import annotations

import asyncio

import pytest
import uvloop

from fastgw.timelimit import time_limit


def run(coro):
    return uvloop.run(coro)


def test_the_block_ends_with_timeout_error_and_the_task_is_not_left_cancelled():
    async def main():
        with pytest.raises(TimeoutError):
            with time_limit(0.01):
                await asyncio.sleep(10)
        task = asyncio.current_task()
        assert task is not None and task.cancelling() == 0
        await asyncio.sleep(0)  # the task goes on running normally
        return "went on"

    assert run(main()) == "went on"


def test_a_block_that_finishes_in_time_cancels_its_timer():
    async def main():
        loop = asyncio.get_running_loop()
        with time_limit(0.05) as d:
            await asyncio.sleep(0)
        await asyncio.sleep(0.1)  # past the deadline: the cancelled timer must not fire
        assert not d.expired
        return loop.is_running()

    assert run(main())


def test_an_outside_cancellation_is_not_turned_into_a_timeout():
    async def body(started: asyncio.Event):
        with time_limit(10):
            started.set()
            await asyncio.sleep(10)

    async def main():
        started = asyncio.Event()
        task = asyncio.ensure_future(body(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    run(main())


def test_an_outside_cancellation_at_the_deadline_still_propagates():
    async def main():
        task = asyncio.current_task()
        assert task is not None
        with pytest.raises(asyncio.CancelledError):
            with time_limit(0.01):
                asyncio.get_running_loop().call_later(0.01, task.cancel)  # both at once
                await asyncio.sleep(10)

    run(main())


def test_errors_inside_the_block_pass_through_unchanged():
    async def main():
        with pytest.raises(ValueError, match="boom"):
            with time_limit(10):
                await asyncio.sleep(0)
                raise ValueError("boom")

    run(main())


def test_each_new_event_loop_is_picked_up():
    async def main():
        with time_limit(0.01):
            await asyncio.sleep(0)
        with pytest.raises(TimeoutError):
            with time_limit(0.01):
                await asyncio.sleep(1)
        return True

    assert run(main()) and asyncio.run(main()) and run(main())  # three loops in one thread
