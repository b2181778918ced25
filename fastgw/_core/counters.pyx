# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: extra_compile_args = -O3 -ffp-contract=off
"""The per-request half of ``fastgw.governance.counters.SharedMemoryCounterStore``.

Why compiled: admission and settlement read and write up to three 64-byte slots of the
shared counter file under one ``flock``. Done with ``struct`` and dataclasses that cost
~15 us a request; here it is the lock, a few loads and stores on the mapping, and the
result objects.

The file layout is the one ``counters.py`` documents: after the header, ``slots``
open-addressed 64-byte slots ``<16sdddddq`` (ident, window start, spend, reserved, RPM TAT,
TPM TAT, in flight), probed linearly from the ident's first 8 bytes (little-endian).

Decisions and counters are bit-identical to the Python definitions they follow
(``budgets.exceeds``, ``ratelimit.gcra``/``remaining_after``, ``durations.window_start``):
the same double operations in the same order (compiled without FMA contraction), and the
limits keep their Python objects for the refusal and the headers.
tests/_core/test_counters.py holds the reference model it is checked against.
"""

from cpython.buffer cimport PyBUF_WRITABLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.exc cimport PyErr_CheckSignals
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.errno cimport EINTR, errno
from libc.math cimport INFINITY, floor
from libc.stdint cimport int64_t, uint64_t
from libc.string cimport memcmp, memcpy, memset


cdef extern from "sys/file.h" nogil:
    int flock(int fd, int operation)
    enum:
        LOCK_EX
        LOCK_NB
        LOCK_UN

cdef extern from "errno.h":
    enum:
        EWOULDBLOCK


ctypedef struct Slot:               # one slot of the file, native layout == "<16sdddddq" here
    unsigned char ident[16]
    double window                   # start of the budget window the spend belongs to
    double spend
    double reserved                 # outstanding reservations of admitted requests
    double rpm_tat                  # GCRA theoretical arrival times
    double tpm_tat
    int64_t in_flight


ctypedef struct Limits:             # one scope of a plan, as C values
    Py_ssize_t offset               # of its slot in the mapping; -1 until located
    unsigned char ident[16]
    bint budgeted
    double max_budget
    bint resets                     # has a duration: a later window starts from zero spend
    double window                   # window_start(duration, now) for every now in [lo, hi)
    double window_lo
    double window_hi
    double rpm                      # 0: no limit (Python tests the limit's truthiness)
    double tpm
    bint parallel
    double max_parallel


ctypedef struct Gcra:
    bint allowed
    bint impossible
    double tat
    double remaining
    double retry_after


cdef enum Reason:
    ADMITTED, BUDGET, PARALLEL, RPM, TPM

cdef enum:
    STACK_SCOPES = 4        # scopes admitted without a heap buffer (a request has up to 3)
    MAX_PLANS = 16384       # cached scope tuples per worker (identities are rebuilt on admin changes)

# Each scope caches its budget window [start, end) from durations.window_start/window_end
# and trusts it only until a microsecond before the end: that close to it, datetime's
# rounding to the microsecond (months) or the rounding of ``now - anchor`` (fixed lengths)
# may already give the next window, so window_start is asked again.
cdef double WINDOW_GUARD = 1e-6

# Taken from the governance modules when the first store maps its file, not at import:
# fastgw.governance.counters imports this module.
cdef object _Decision, _Refusal, _RateView, _Ticket, _ScopeState, _CounterStoreFull
cdef object _ident_of, _window_start, _window_end
cdef double _PERIOD = 0.0, _RATE_EPS = 0.0, _BUDGET_EPS = 0.0
cdef Py_ssize_t _GEN_OFFSET = 0
cdef bint _bound = False


cdef int _bind() except -1:
    global _Decision, _Refusal, _RateView, _Ticket, _ScopeState, _CounterStoreFull
    global _ident_of, _window_start, _window_end, _PERIOD, _RATE_EPS, _BUDGET_EPS, _GEN_OFFSET, _bound
    from fastgw import durations
    from fastgw.governance import budgets, counters, ratelimit, shm
    _Decision, _Refusal, _RateView = counters.Decision, counters.Refusal, counters.RateView
    _Ticket, _ScopeState, _CounterStoreFull = counters.Ticket, counters.ScopeState, counters.CounterStoreFull
    _ident_of = counters.ident_of
    _window_start, _window_end = durations.window_start, durations.window_end
    _PERIOD, _RATE_EPS, _BUDGET_EPS = ratelimit.PERIOD, ratelimit._EPS, budgets._EPS
    _GEN_OFFSET = shm.JOURNAL_GEN_OFFSET
    _bound = True
    return 0


cdef object _os_error(int err):
    import os
    return OSError(err, os.strerror(err))  # as fcntl.flock raises it


cdef class _Plan:
    """The C limits of one tuple of ScopeLimits (cached by the tuple's identity: it is frozen)."""

    cdef tuple scopes
    cdef Py_ssize_t n
    cdef Limits* limits

    def __dealloc__(self):
        PyMem_Free(self.limits)


cdef _Plan _build_plan(tuple scopes):
    cdef _Plan plan = _Plan.__new__(_Plan)
    cdef Py_ssize_t i, n = len(scopes)
    cdef Limits* lim
    cdef bytes ident
    plan.limits = <Limits*>PyMem_Malloc((n if n > 0 else 1) * sizeof(Limits))
    if plan.limits == NULL:
        raise MemoryError()
    plan.scopes = scopes
    plan.n = n
    for i in range(n):
        scope = scopes[i]
        lim = &plan.limits[i]
        memset(lim, 0, sizeof(Limits))
        lim.offset = -1
        ident = _ident_of(scope.kind, scope.id)
        if len(ident) != 16:
            raise ValueError("a counter ident is 16 bytes")
        memcpy(lim.ident, <const char*>ident, 16)
        lim.budgeted = scope.max_budget is not None
        lim.max_budget = scope.max_budget if lim.budgeted else 0.0
        lim.resets = scope.duration is not None
        lim.window_lo, lim.window_hi = INFINITY, -INFINITY  # empty: asked on first use
        lim.rpm = scope.rpm if scope.rpm else 0.0
        lim.tpm = scope.tpm if scope.tpm else 0.0
        lim.parallel = scope.max_parallel is not None
        lim.max_parallel = scope.max_parallel if lim.parallel else 0.0
    return plan


cdef int _refresh_window(Limits* lim, object scope, double now) except -1:
    """Ask durations.window_start again (the cached window does not cover ``now``)."""
    start = _window_start(scope.duration, now)
    end = _window_end(scope.duration, now)
    lim.window = start
    if end is None:
        lim.window_lo, lim.window_hi = -INFINITY, INFINITY
    else:
        lim.window_lo, lim.window_hi = start, <double>end - WINDOW_GUARD
    return 0


cdef inline int _windowed(Limits* lim, object scopes, Py_ssize_t i, Slot* v, double now) except -1:
    """Move the slot copy ``v`` into the window of ``now``; an ended window resets spend."""
    if not (lim.window_lo <= now < lim.window_hi):
        _refresh_window(lim, scopes[i], now)
    if v.window != lim.window:
        if lim.resets and lim.window > v.window:
            v.spend = 0.0
        v.window = lim.window
    return 0


cdef inline double _left(double at, double now, double interval) noexcept nogil:
    """Whole units of a limit still free if the limit's clock stands at ``at``."""
    cdef double left = floor((_PERIOD - (at - now)) / interval + _RATE_EPS)
    return left if left > 0 else 0.0


cdef inline void _gcra(double tat, double now, double cost, double limit, Gcra* r) noexcept nogil:
    cdef double interval = _PERIOD / limit
    cdef double base = now if now > tat else tat
    cdef double new_tat = base + cost * interval
    cdef double late
    if new_tat - now <= _PERIOD + _RATE_EPS:
        r.allowed, r.impossible, r.tat, r.retry_after = True, False, new_tat, 0.0
        r.remaining = _left(new_tat, now, interval)
    else:
        late = new_tat - now - _PERIOD
        r.allowed, r.tat, r.retry_after = False, tat, (late if late > 0.0 else 0.0)
        r.impossible = cost * interval > _PERIOD + _RATE_EPS
        r.remaining = _left(base, now, interval)


cdef class CounterCore:
    """Admission, settlement and the per-scope counters, on the slot table of a mapped file."""

    cdef Py_buffer _buf
    cdef char* _base                # NULL until map_slots / after unmap
    cdef int _fd
    cdef bint _exclusive  # the only process using the file: no lock needed on the hot path
    cdef Py_ssize_t _slot_base
    cdef Py_ssize_t _slots
    cdef dict _plans                # id(tuple of ScopeLimits) -> _Plan

    def __cinit__(self):
        self._base = NULL
        self._fd = -1
        self._plans = {}

    def __dealloc__(self):
        if self._base != NULL:
            PyBuffer_Release(&self._buf)

    def map_slots(self, mapping, int fd, Py_ssize_t slot_base, Py_ssize_t slots, bint exclusive=False):
        """Work on ``mapping`` (the file's mmap, locked through ``fd``) until ``unmap``.

        ``exclusive``: this process is the instance's only worker, so slot operations skip
        the ``flock`` (two system calls each; nothing else maps the file to exclude)."""
        import sys
        if sys.byteorder != "little" or sizeof(Slot) != 64:
            raise RuntimeError("the compiled counter slots assume a little-endian 64-byte layout")
        if not _bound:
            _bind()
        if self._base != NULL:
            raise RuntimeError("already mapped")
        PyObject_GetBuffer(mapping, &self._buf, PyBUF_WRITABLE)
        if slots <= 0 or slots & (slots - 1) or slot_base < _GEN_OFFSET + 8 or slot_base % 8 \
                or self._buf.len < slot_base + slots * <Py_ssize_t>sizeof(Slot):
            PyBuffer_Release(&self._buf)
            raise ValueError("the mapping does not hold the slot table")
        self._base = <char*>self._buf.buf
        self._fd, self._slot_base, self._slots = fd, slot_base, slots
        self._exclusive = exclusive
        self._plans = {}

    def unmap(self):
        """Let the mapping go (before it is closed); the store is unusable afterwards."""
        if self._base != NULL:
            self._base = NULL
            PyBuffer_Release(&self._buf)
        self._plans = {}

    def forget(self):
        """Drop cached slot offsets: the file was re-initialised."""
        self._plans = {}

    # -- lock and slots -------------------------------------------------------------
    cdef int _lock(self) except -1:
        cdef int rc, err
        if self._base == NULL:
            raise ValueError("the counter store is closed")
        if self._exclusive:
            return 0
        if flock(self._fd, LOCK_EX | LOCK_NB) == 0:
            return 0
        err = errno
        while True:
            if err == EINTR:
                PyErr_CheckSignals()
            elif err != EWOULDBLOCK:
                raise _os_error(err)
            with nogil:  # another worker holds it: let this one's other threads run meanwhile
                rc = flock(self._fd, LOCK_EX)
                err = errno
            if rc == 0:
                return 0

    cdef int _unlock(self) except -1:
        if self._exclusive:
            return 0
        if flock(self._fd, LOCK_UN) != 0:
            raise _os_error(errno)
        return 0

    cdef Slot* _probe(self, const unsigned char* ident, bint create) except? NULL:
        """The ident's slot (claimed if ``create`` and new), or NULL if absent."""
        cdef uint64_t h
        cdef Py_ssize_t i, k, mask = self._slots - 1
        cdef Slot* slot
        cdef unsigned char empty[16]
        memset(empty, 0, 16)
        memcpy(&h, ident, 8)
        i = <Py_ssize_t>(h & <uint64_t>mask)
        for k in range(self._slots):
            slot = <Slot*>(self._base + self._slot_base + i * sizeof(Slot))
            if memcmp(slot.ident, ident, 16) == 0:
                return slot
            if memcmp(slot.ident, empty, 16) == 0:
                if not create:
                    return NULL
                memset(slot, 0, sizeof(Slot))
                memcpy(slot.ident, ident, 16)
                return slot
            i = (i + 1) & mask
        raise _CounterStoreFull(f"the counter store is full ({self._slots} slots)")

    cdef inline Slot* _slot(self, Limits* lim) except NULL:
        if lim.offset < 0:
            lim.offset = <char*>self._probe(lim.ident, True) - self._base
        return <Slot*>(self._base + lim.offset)

    cdef _Plan _plan(self, object scopes, bint cache=True):
        """The C limits of ``scopes``; tuples are cached (identities hand out the same one)."""
        cdef _Plan plan
        if self._base == NULL:
            raise ValueError("the counter store is closed")
        if not cache or type(scopes) is not tuple:
            return _build_plan(tuple(scopes))
        key = id(scopes)
        plan = self._plans.get(key)
        if plan is not None and plan.scopes is scopes:
            return plan
        plan = _build_plan(scopes)
        if len(self._plans) >= MAX_PLANS:
            self._plans.clear()
        self._plans[key] = plan  # holds the tuple, so its id is not reused while cached
        return plan

    # -- request path ---------------------------------------------------------------
    def admit(self, scopes, reserve, tokens, double now):
        """Check every scope and charge them all, or none (the first refusal wins)."""
        cdef _Plan plan = self._plan(scopes)
        cdef Py_ssize_t i, n = plan.n, at = -1, req_at = -1, tok_at = -1
        cdef double c_reserve = reserve, cost = tokens
        cdef double req_left = 0.0, tok_left = 0.0
        cdef Reason reason = ADMITTED
        cdef Gcra g
        cdef Limits* lim
        cdef Slot* slot
        cdef Slot* v
        cdef Slot stack[STACK_SCOPES]
        cdef Slot* work = stack
        memset(&g, 0, sizeof(Gcra))
        if n > STACK_SCOPES:
            work = <Slot*>PyMem_Malloc(n * sizeof(Slot))
            if work == NULL:
                raise MemoryError()
        try:
            self._lock()
            try:
                for i in range(n):
                    lim = &plan.limits[i]
                    v = &work[i]
                    memcpy(v, self._slot(lim), sizeof(Slot))
                    _windowed(lim, plan.scopes, i, v, now)
                    if lim.budgeted and (v.spend >= lim.max_budget - _BUDGET_EPS or
                                         v.spend + v.reserved + c_reserve > lim.max_budget + _BUDGET_EPS):
                        reason = BUDGET
                    elif lim.parallel and v.in_flight >= lim.max_parallel:
                        reason = PARALLEL
                    if reason != ADMITTED:
                        at = i
                        break
                    if lim.rpm != 0.0:
                        _gcra(v.rpm_tat, now, 1.0, lim.rpm, &g)
                        if req_at < 0 or g.remaining < req_left:
                            req_at, req_left = i, g.remaining
                        if not g.allowed:
                            reason, at = RPM, i
                            break
                        v.rpm_tat = g.tat
                    if lim.tpm != 0.0:
                        _gcra(v.tpm_tat, now, cost, lim.tpm, &g)
                        if tok_at < 0 or g.remaining < tok_left:
                            tok_at, tok_left = i, g.remaining
                        if not g.allowed:
                            reason, at = TPM, i
                            break
                        v.tpm_tat = g.tat
                if reason == ADMITTED:
                    for i in range(n):
                        v = &work[i]
                        slot = <Slot*>(self._base + plan.limits[i].offset)
                        slot.window, slot.spend = v.window, v.spend
                        slot.reserved = v.reserved + c_reserve
                        slot.rpm_tat, slot.tpm_tat = v.rpm_tat, v.tpm_tat
                        slot.in_flight = v.in_flight + 1
            finally:
                self._unlock()
            rate = _RateView(plan.scopes[req_at].rpm if req_at >= 0 else None,
                             int(req_left) if req_at >= 0 else None,
                             plan.scopes[tok_at].tpm if tok_at >= 0 else None,
                             int(tok_left) if tok_at >= 0 else None)
            if reason == ADMITTED:
                return _Decision(_Ticket(plan.scopes, reserve, tokens), None, rate)
            scope = plan.scopes[at]
            if reason == BUDGET:
                refusal = _Refusal("budget", scope, work[at].spend, work[at].reserved, scope.max_budget)
            elif reason == PARALLEL:
                refusal = _Refusal("parallel", scope, limit=scope.max_parallel, retry_after=1.0)
            elif reason == RPM:
                refusal = _Refusal("rpm", scope, limit=scope.rpm, retry_after=g.retry_after)
            else:
                refusal = _Refusal("tpm", scope, limit=scope.tpm, retry_after=g.retry_after, impossible=g.impossible)
            return _Decision(None, refusal, rate)
        finally:
            if work != stack:
                PyMem_Free(work)

    def settle(self, ticket, double cost, tokens, double now):
        """Replace the ticket's reservation by ``cost``, correct the TPM clock by the tokens
        actually used, free its in-flight place; once per ticket."""
        if ticket.settled:
            return
        ticket.settled = True
        cdef _Plan plan = self._plan(ticket.scopes)
        cdef double reserve = ticket.reserve, extra = tokens - ticket.tokens
        cdef Py_ssize_t i
        cdef Limits* lim
        cdef Slot* slot
        cdef double reserved
        self._lock()
        try:
            for i in range(plan.n):
                lim = &plan.limits[i]
                slot = self._slot(lim)
                _windowed(lim, plan.scopes, i, slot, now)
                slot.spend += cost
                reserved = slot.reserved - reserve
                slot.reserved = reserved if reserved > 0.0 else 0.0
                if lim.tpm != 0.0:
                    slot.tpm_tat += extra * (_PERIOD / lim.tpm)
                slot.in_flight = slot.in_flight - 1 if slot.in_flight > 1 else 0
        finally:
            self._unlock()

    def record_spend(self, scopes, double cost, double now):
        """Spend of a request that held no ticket (the master key or an unlimited key)."""
        cdef _Plan plan = self._plan(scopes)
        cdef Py_ssize_t i
        cdef Slot* slot
        self._lock()
        try:
            for i in range(plan.n):
                slot = self._slot(&plan.limits[i])
                _windowed(&plan.limits[i], plan.scopes, i, slot, now)
                slot.spend += cost
        finally:
            self._unlock()

    # -- one scope (admin calls, refusal headers) -----------------------------------
    def state(self, scope, double now):
        cdef _Plan plan = self._plan((scope,), False)
        cdef Slot copy
        cdef Slot* slot
        self._lock()
        try:
            slot = self._probe(plan.limits[0].ident, False)
            if slot != NULL:
                memcpy(&copy, slot, sizeof(Slot))
        finally:
            self._unlock()
        if slot == NULL:
            return _ScopeState(_window_start(scope.duration, now), 0.0, 0.0, 0)
        _windowed(&plan.limits[0], plan.scopes, 0, &copy, now)
        return _ScopeState(copy.window, copy.spend, copy.reserved, copy.in_flight)

    def remaining(self, scope, double now):
        """Requests and tokens left this minute (None where the scope has no such limit)."""
        cdef _Plan plan = self._plan((scope,), False)
        cdef Limits* lim = &plan.limits[0]
        cdef double rpm_tat = 0.0, tpm_tat = 0.0
        cdef Slot* slot
        self._lock()
        try:
            slot = self._probe(lim.ident, False)
            if slot != NULL:
                rpm_tat, tpm_tat = slot.rpm_tat, slot.tpm_tat
        finally:
            self._unlock()
        return (int(_left(now if now > rpm_tat else rpm_tat, now, _PERIOD / lim.rpm)) if lim.rpm != 0.0 else None,
                int(_left(now if now > tpm_tat else tpm_tat, now, _PERIOD / lim.tpm)) if lim.tpm != 0.0 else None)

    def set_spend(self, scope, double spend, double now):
        self._lock()
        try:
            self.set_spend_locked(None, scope, spend, now)
        finally:
            self._unlock()

    def set_spend_locked(self, view, scope, double spend, double now):
        """``set_spend`` for a caller that holds the lock (``view`` is not needed, kept for callers)."""
        cdef _Plan plan = self._plan((scope,), False)
        cdef Slot* slot = self._slot(&plan.limits[0])
        slot.window = _window_start(scope.duration, now)
        slot.spend = spend

    def head_generation(self):
        """Unlocked peek (an aligned 8-byte read) so the request path skips the lock when nothing changed."""
        if self._base == NULL:
            raise ValueError("the counter store is closed")
        return (<int64_t*>(self._base + _GEN_OFFSET))[0]
