"""Run a function in a thread of its own (per-thread state: scheduling, the writer's quantum)."""
from __future__ import annotations

import threading
from typing import Callable, TypeVar

T = TypeVar("T")


def in_thread(work: Callable[[], T]) -> T:
    """``work()`` in a new thread; its result (or its exception, raised here)."""
    out: list = []

    def target() -> None:
        try:
            out.append((True, work()))
        except BaseException as exc:  # surfaced in the calling thread, where the test looks
            out.append((False, exc))

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    ok, value = out[0]
    if not ok:
        raise value
    return value
