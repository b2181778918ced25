# cython: language_level=3
"""Busy polling: keep the event loop polling for a short window after activity instead of
sleeping in ``epoll_wait``.

Why: on a VM every sleep of the gateway's core is a halt, and every wake-up an interrupt
from the other core; both cost. Measured at c=1 on the benchmark VM (Firecracker, Intel
host): the event loop slept 2.6 times per request, and the same request took 290 us of
CPU against 157 us when the loop never slept (c=64), p50 317 us. Polling through the
gaps (a proxied request's own upstream round trip, the client's next request) gave p50
221-235 us. The window bounds what an idle gateway burns: at most ``window`` of polling
after the last activity, then the loop sleeps as usual and the next request re-arms it.

A poll step that finds the loop idle (nothing but poll steps ran since the last one) yields
the core (``sched_yield``, GIL released), so the usage writer's thread and any other process
on the core keep their turns: without the yield, the writer only ran when Python's 5-ms GIL
switch interval forced a hand-over (c=1 p99 3.5 ms). A step that follows other work does
not yield: the loop is in the middle of a request (its next callbacks may already be
ready), and a yield there put a writer slice of up to 20 us inside the request. Measured
at c=1 (``benchmarks/c1_stalls.py --stream``, Xeon VM, three interleaved rounds): time to
first byte p50 280-282 us against 296-305 us with a yield on every step; the writer kept up.
On an AMD EPYC VM in a slow phase (``benchmarks/ab_latency.py``, 6,000 requests per tree,
order swapped): time to first byte p50 -18 and +8 us, c=1 p50 -6 us and p99 -47 us; within
that host's noise, never worse on the mean.
"""
from libc.time cimport timespec

cdef extern from "<time.h>" nogil:
    int clock_gettime(int clk, timespec* ts)
    int CLOCK_MONOTONIC

cdef extern from "<sched.h>" nogil:
    int sched_yield()


GAP = 15e-6  # a poll step this long after the previous one: other work ran in between


cdef inline double _now() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return ts.tv_sec + ts.tv_nsec * 1e-9


cdef class BusyPoll:
    """One per event loop. ``kick()`` on activity; the loop then runs a poll step on every
    iteration (a ready callback makes libuv poll without sleeping) until ``window`` seconds
    pass in which nothing but the poll steps ran."""

    def __init__(self, loop, double window, double gap=GAP):
        if window < 0 or gap <= 0:
            raise ValueError("window must be >= 0 and gap > 0")
        self._call_soon = loop.call_soon
        self.window = window
        self.gap = gap
        self.active = False
        self.steps = 0
        self.kicks = 0

    cpdef void kick(self):
        """Activity: poll (again) for the next ``window`` seconds."""
        cdef double now
        if self.window <= 0:
            return
        now = _now()
        self.deadline = now + self.window
        self._last = now
        if not self.active:
            self.active = True
            self.kicks += 1
            self._call_soon(self)

    def __call__(self):
        """One poll step: called by the loop once per iteration while active."""
        cdef double now = _now()
        if now - self._last > self.gap:  # something else ran since the last step: busy
            self.deadline = now + self.window
            self._last = now
            self._call_soon(self)  # poll again, without handing the core over mid-request
            return
        if now >= self.deadline:
            self.active = False  # idle for a whole window: let the loop sleep
            return
        self.steps += 1
        with nogil:
            sched_yield()
        self._last = _now()  # after the yield: another thread's turn is not this loop's activity
        self._call_soon(self)
