"""The usage writer thread's CPU priority: idle-only while it keeps up, niced when it falls behind.

Why: the writer shares the gateway's core. At nice 5 a flush (about 1-2 ms of CPU for the
rows of 0.2 s at 2,000 requests/s) kept the core for its scheduler slice when a request
arrived; at c=1 that showed as a 3-5 ms stall every 0.2 s (25-31 of 6,000 sequential
requests over 1 ms, against 10 with this policy: benchmarks/c1_stalls.py). A SCHED_IDLE
thread is preempted as soon as a normal thread wakes, so the request path never waits for it. But on a saturated core an
idle-only thread hardly runs (measured: 94,000 rows queued after 15 s at c=64), so the writer
goes back to nice 5 when it falls behind: over ``HIGH_BACKLOG`` queued rows, or rows waiting
while its last complete flush began over ``MAX_LAG`` seconds ago (a quiet gateway on a host
kept busy by other programs). It returns to idle-only once it has caught up: under
``LOW_BACKLOG`` rows, or its last complete flush began within ``CAUGHT_UP_INTERVALS`` flush
intervals.

Leaving SCHED_IDLE needs root (CAP_SYS_NICE) or an RLIMIT_NICE that allows the nice value;
without either the writer never enters it and simply runs at nice 5.
"""
from __future__ import annotations

import contextlib
import os
import threading
from typing import Callable, Iterator

WRITER_NICE = 5
HIGH_BACKLOG = 5000  # rows queued (about 1 s of a saturated worker): run niced, not idle-only
LOW_BACKLOG = 500  # back under this: idle-only again
MAX_LAG = 3.0  # seconds: no complete flush for this long while rows wait also counts as behind
CAUGHT_UP_INTERVALS = 2.5  # a complete flush began within this many flush intervals: keeping pace


def _can_leave_idle(nice: int) -> bool:
    if not hasattr(os, "sched_setscheduler"):
        return False
    if os.geteuid() == 0:
        return True
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NICE)
    except (ImportError, AttributeError, OSError, ValueError):
        return False
    return soft == resource.RLIM_INFINITY or soft >= 20 - nice


def _set_idle(tid: int) -> None:
    os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))


def _set_normal(tid: int, nice: int) -> None:
    if hasattr(os, "sched_setscheduler") and os.sched_getscheduler(tid) != os.SCHED_OTHER:
        os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
    os.setpriority(os.PRIO_PROCESS, tid, nice)


class WriterPriority:
    """``start`` runs in the writer thread (priorities are per thread) and remembers its id;
    ``adjust`` runs there on every cycle. ``behind`` is for the event loop: an idle-only writer
    on a saturated core may not run for seconds, so the thread that queues rows lifts it."""

    def __init__(self, nice: int = WRITER_NICE, high: int = HIGH_BACKLOG, low: int = LOW_BACKLOG,
                 max_lag: float = MAX_LAG, flush_interval: float = 0.05, *,  # log.FLUSH_INTERVAL
                 can_leave_idle: bool | None = None, set_idle: Callable[[int], None] = _set_idle,
                 set_normal: Callable[[int, int], None] = _set_normal) -> None:
        self.nice = nice
        self.high = high
        self.low = low
        self.max_lag = max_lag
        self.caught_up_lag = min(CAUGHT_UP_INTERVALS * flush_interval, max_lag / 2)
        self.can_idle = _can_leave_idle(nice) if can_leave_idle is None else can_leave_idle
        self._set_idle = set_idle
        self._set_normal = set_normal
        self.idle = False
        self.switches = 0  # to nice after falling behind (tests, diagnostics)
        self.tid = 0

    def start(self) -> None:
        self.tid = threading.get_native_id()
        self.normal()
        self._enter_idle()

    def adjust(self, backlog: int, lag: float) -> None:
        """``backlog``: rows queued; ``lag``: seconds since the last flush that wrote everything
        queued when it began."""
        behind = backlog > self.high or (backlog > 0 and lag > self.max_lag)
        if self.idle and behind:
            self.behind()
        elif not self.idle and not behind and (backlog < self.low or lag <= self.caught_up_lag):
            # Caught up: under the low mark, or the last flush wrote everything and began
            # recently. A backlog test alone kept a c=1 gateway niced for seconds: each cycle
            # finds one interval's rows queued, which at 2,500 requests/s is the low mark.
            self._enter_idle()

    @contextlib.contextmanager
    def holding_lock(self) -> Iterator[None]:
        """Niced while the writer holds SQLite's write lock, even when it keeps pace.

        Why: an idle-only thread gets no CPU while the core has other work, and with the
        lock held that stalls every other writer of the file (admin writes, the other
        workers' usage writers) until their busy timeouts fail them: measured with three
        busy loops on the two cores, admin writes failed with "database is locked" in 2 of
        3 runs of tests/test_e2e_governance.py. Niced, the writer always gets a share, so
        the lock is held for a bounded time; it still hands the core back every few us
        (``UsageLog._slice_check``), so requests wait no longer for it."""
        lifted = False
        if self.idle:
            try:
                self._set_normal(self.tid, self.nice)
                lifted = True
            except (AttributeError, OSError):
                pass
        try:
            yield
        finally:
            if lifted and self.idle:  # ``behind()`` from the loop meanwhile: stay niced
                try:
                    self._set_idle(self.tid)
                except (AttributeError, OSError):
                    self.idle = False

    def behind(self) -> None:
        """Niced until the backlog is worked off (safe from any thread of the process)."""
        self.normal()
        self.switches += 1

    def normal(self) -> None:
        """Niced, not idle-only (also for the final flush at shutdown)."""
        try:
            self._set_normal(self.tid, self.nice)
        except (AttributeError, OSError):  # not Linux, or not permitted: normal priority
            pass
        self.idle = False

    def _enter_idle(self) -> None:
        if not self.can_idle:
            return
        try:
            self._set_idle(self.tid)
        except (AttributeError, OSError):
            self.can_idle = False  # refused once: stay niced for good
            return
        self.idle = True
