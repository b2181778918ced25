"""Inter-chunk idle timeout (and optional deadline) for a stream being relayed.

One timer per stream instead of one per chunk: ``touch()`` only stores the loop time,
and the timer re-arms itself from the last touch when it fires early. ``pause()`` stops
the idle clock while the relay is busy sending to the client (a slow client is not an
idle upstream) until the next ``touch()``. When the upstream
has been quiet for ``idle`` seconds (or the deadline passed) it cancels the relaying task
and says why in ``fired``; the relay turns that cancellation into an error event.
"""
from __future__ import annotations

import asyncio

IDLE = "idle"
DEADLINE = "deadline"


class StreamWatchdog:
    __slots__ = ("idle", "deadline", "fired", "_loop", "_task", "_last", "_handle", "_paused")

    def __init__(self, idle: float, deadline: float | None = None) -> None:
        """``deadline`` is in ``loop.time()`` seconds."""
        self.idle = idle
        self.deadline = deadline
        self.fired: str | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._last = 0.0
        self._handle: asyncio.TimerHandle | None = None
        self._paused = False

    def start(self) -> None:
        """Watch the current task from now on."""
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._last = self._loop.time()
        self._arm()

    def touch(self) -> None:
        """Now waiting on the upstream again: the idle clock starts from here."""
        self._paused = False
        if self._loop is not None:
            self._last = self._loop.time()

    def pause(self) -> None:
        self._paused = True

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _arm(self) -> None:
        assert self._loop is not None
        when = self._last + self.idle
        if self.deadline is not None:
            when = min(when, self.deadline)
        self._handle = self._loop.call_at(when, self._check)

    def _check(self) -> None:
        assert self._loop is not None and self._task is not None
        now = self._loop.time()
        if self._paused:
            self._last = now
        if self.deadline is not None and now >= self.deadline:
            self.fired = DEADLINE
        elif now - self._last >= self.idle:
            self.fired = IDLE
        else:
            self._arm()
            return
        self._handle = None
        self._task.cancel()
