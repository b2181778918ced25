"""The compiled counter core (fastgw._core.counters) against a pure-Python reference model.

The model below is the counter semantics written out in Python on the package's own
definitions (``budgets.exceeds``, ``ratelimit.gcra``/``remaining_after``,
``durations.window_start``). Random sequences of admit/settle/record_spend/set_spend run on
both; every decision, every header figure and every byte of every slot must agree exactly.
Two processes hammering one file must not lose an update.
"""
from __future__ import annotations

import fcntl
import math
import random
import struct
import subprocess
import sys
import textwrap
import threading
import time
from calendar import timegm
from dataclasses import dataclass

import pytest

from fastgw.governance import shm
from fastgw.governance.budgets import exceeds
from fastgw.governance.counters import CounterStoreFull, ScopeLimits, SharedMemoryCounterStore, ident_of
from fastgw.durations import parse_duration, window_end, window_start
from fastgw.governance.ratelimit import gcra, remaining_after

SLOT = struct.Struct("<16sdddddq")


# -- reference model --------------------------------------------------------------------

@dataclass
class ModelTicket:
    scopes: tuple
    reserve: float
    tokens: int
    settled: bool = False


class Model:
    """Counters as a dict ident -> [window, spend, reserved, rpm_tat, tpm_tat, in_flight]."""

    def __init__(self) -> None:
        self.slots: dict[bytes, list] = {}

    def _values(self, scope: ScopeLimits, create: bool = True) -> list | None:
        ident = ident_of(scope.kind, scope.id)
        if ident not in self.slots and create:
            self.slots[ident] = [0.0, 0.0, 0.0, 0.0, 0.0, 0]
        return self.slots.get(ident)

    @staticmethod
    def _window(v: list, scope: ScopeLimits, now: float) -> None:
        start = window_start(scope.duration, now)
        if v[0] != start:
            if scope.duration is not None and start > v[0]:
                v[1] = 0.0
            v[0] = start

    def admit(self, scopes, reserve, tokens, now):
        """('ok', ticket, rate) or ('refused', refusal fields, rate); rate as in RateView."""
        req = tok = None  # (limit, remaining) of the tightest scope so far
        staged = []
        for scope in scopes:
            stored = self._values(scope)
            v = list(stored)
            self._window(v, scope, now)
            refusal = None
            if scope.max_budget is not None and exceeds(v[1], v[2], reserve, scope.max_budget):
                refusal = ("budget", scope, v[1], v[2], scope.max_budget, 0.0, False)
            elif scope.max_parallel is not None and v[5] >= scope.max_parallel:
                refusal = ("parallel", scope, 0.0, 0.0, scope.max_parallel, 1.0, False)
            if refusal is None and scope.rpm:
                r = gcra(v[3], now, 1, scope.rpm)
                if req is None or r.remaining < req[1]:
                    req = (scope.rpm, r.remaining)
                if r.allowed:
                    v[3] = r.tat
                else:
                    refusal = ("rpm", scope, 0.0, 0.0, scope.rpm, r.retry_after, False)
            if refusal is None and scope.tpm:
                r = gcra(v[4], now, tokens, scope.tpm)
                if tok is None or r.remaining < tok[1]:
                    tok = (scope.tpm, r.remaining)
                if r.allowed:
                    v[4] = r.tat
                else:
                    refusal = ("tpm", scope, 0.0, 0.0, scope.tpm, r.retry_after, r.impossible)
            if refusal is not None:
                return "refused", refusal, (req, tok)
            staged.append((stored, v))
        for stored, v in staged:  # all levels or none
            v[2] += reserve
            v[5] += 1
            stored[:] = v
        return "ok", ModelTicket(tuple(scopes), reserve, tokens), (req, tok)

    def settle(self, ticket: ModelTicket, cost: float, tokens: int, now: float) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        for scope in ticket.scopes:
            v = self._values(scope)
            self._window(v, scope, now)
            v[1] += cost
            v[2] = max(0.0, v[2] - ticket.reserve)
            if scope.tpm:
                v[4] += (tokens - ticket.tokens) * (60.0 / scope.tpm)
            v[5] = max(0, v[5] - 1)

    def record_spend(self, scopes, cost: float, now: float) -> None:
        for scope in scopes:
            v = self._values(scope)
            self._window(v, scope, now)
            v[1] += cost

    def state(self, scope: ScopeLimits, now: float) -> tuple:
        stored = self._values(scope, create=False)
        if stored is None:
            return window_start(scope.duration, now), 0.0, 0.0, 0
        v = list(stored)
        self._window(v, scope, now)
        return v[0], v[1], v[2], v[5]

    def remaining(self, scope: ScopeLimits, now: float) -> tuple:
        v = self._values(scope, create=False) or [0.0, 0.0, 0.0, 0.0, 0.0, 0]
        return (remaining_after(v[3], now, scope.rpm) if scope.rpm else None,
                remaining_after(v[4], now, scope.tpm) if scope.tpm else None)

    def set_spend(self, scope: ScopeLimits, spend: float, now: float) -> None:
        v = self._values(scope)
        v[0] = window_start(scope.duration, now)
        v[1] = spend


def file_slots(store: SharedMemoryCounterStore) -> dict[bytes, list]:
    """Every used slot of the file, read with struct (the layout other tools rely on); each
    ident must sit where linear probing from its first 8 bytes puts it."""
    n = store.slots
    rows = [SLOT.unpack_from(store.file.view, shm.HEADER_SIZE + i * SLOT.size) for i in range(n)]
    out = {}
    for i, (ident, *values) in enumerate(rows):
        if ident != b"\0" * 16:
            out[ident] = values
            home = int.from_bytes(ident[:8], "little") & (n - 1)
            assert all(rows[(home + k) % n][0] != b"\0" * 16 for k in range((i - home) % n)), "off its probe chain"
    return out


def as_tuple(decision) -> tuple:
    rate = decision.rate
    rates = (None if rate.limit_requests is None else (rate.limit_requests, rate.remaining_requests),
             None if rate.limit_tokens is None else (rate.limit_tokens, rate.remaining_tokens))
    for value in (rate.remaining_requests, rate.remaining_tokens):
        assert value is None or type(value) is int
    if decision.ticket is not None:
        assert decision.refusal is None
        return "ok", rates
    r = decision.refusal
    return "refused", (r.reason, r.scope, r.spend, r.reserved, r.limit, r.retry_after, r.impossible), rates


def expected(outcome: str, detail, rates) -> tuple:
    """A model admission in the form of ``as_tuple``."""
    return (outcome, rates) if outcome == "ok" else (outcome, detail, rates)


def open_store(path, slots=64, instance="run-1") -> SharedMemoryCounterStore:
    store = SharedMemoryCounterStore(str(path), instance, slots, 4096)
    with store.locked():
        store.claim()
    return store


def ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return float(timegm((year, month, day, hour, minute, 0)))


# -- randomized equivalence -------------------------------------------------------------

DURATIONS = [None, None, "30s", "1h", "1mo", "2mo"]


def random_scope(rng: random.Random, kind: str, ident: str) -> ScopeLimits:
    duration = rng.choice(DURATIONS)
    return ScopeLimits(
        kind, ident,
        max_budget=rng.choice([None, None, 0.0, 0.5, 1, 2.5, 1e9]),
        duration=parse_duration(duration) if duration else None,
        rpm=rng.choice([None, None, 0, 1, 3, 7, 10**9]),
        tpm=rng.choice([None, None, 0, 29, 44, 250, 1000, 10**12]),  # 60/29*29 > 60, 60/44*44 < 60
        max_parallel=rng.choice([None, None, 0, 1, 2, 4]),
    )


class Clock:
    """Mostly forward, sometimes a little back (another worker's clock), sometimes across a
    window edge, and sometimes within a microsecond of a month's end (datetime rounding)."""

    def __init__(self, rng: random.Random, start: float) -> None:
        self.rng, self.now = rng, start

    def tick(self) -> float:
        rng = self.rng
        roll = rng.random()
        if roll < 0.05:
            self.now -= rng.uniform(0, 3)
        elif roll < 0.08:
            self.now += rng.choice([30.0, 3600.0, 40 * 86400.0])
        elif roll < 0.12:
            month_end = window_end(parse_duration("1mo"), self.now)
            self.now = month_end + rng.choice([-2e-6, -1e-6, -6e-7, -5e-7, -4e-7, -1e-7, 0.0, 1e-7])
        elif roll < 0.15:
            edge = window_end(parse_duration("30s"), self.now)
            self.now = edge + rng.choice([-1e-9, -1e-7, 0.0, 1e-7])
        else:
            self.now += rng.expovariate(1.0) * rng.choice([0.01, 1.0, 10.0])
        return self.now


@pytest.mark.parametrize("seed", range(12))
def test_random_sequences_match_the_reference(tmp_path, seed):
    rng = random.Random(seed)
    slots = rng.choice([16, 16, 32])  # small tables: probe chains collide and wrap
    store, model = open_store(tmp_path / "c", slots=slots), Model()
    names = {"key": [f"k{i}" for i in range(6)], "team": ["t0", "t1", "t2"], "user": ["u0", "u1", "u2"]}
    limits = {(kind, i): random_scope(rng, kind, i) for kind, ids in names.items() for i in ids}
    clock = Clock(rng, ts(2026, 1, 31, 23, 58) + rng.random())
    tickets: list[tuple] = []  # (compiled ticket, model ticket)
    combos: dict[tuple, tuple] = {}  # the same tuple object each time, as identities hand out
    for step in range(2500):
        now = clock.tick()
        op = rng.random()
        if op < 0.05:  # an admin change: new limits for one entity (same slot)
            kind = rng.choice(list(names))
            ident = rng.choice(names[kind])
            limits[(kind, ident)] = random_scope(rng, kind, ident)
            combos.clear()
            continue
        chosen = (rng.choice(names["key"]), rng.choice([None, *names["team"]]), rng.choice([None, *names["user"]]))
        scopes = combos.get(chosen)
        if scopes is None:
            scopes = combos[chosen] = tuple(limits[(kind, i)] for kind, i in zip(("key", "team", "user"), chosen)
                                            if i is not None)
        if rng.random() < 0.1:
            scopes = list(scopes)  # any sequence is accepted, not only the cached tuples
            if rng.random() < 0.3:
                scopes.append(scopes[0])  # a level twice: read before any write, settled twice
        if op < 0.55:
            reserve = rng.choice([0.0, 0.0, 0.1, 0.25, 1 / 3, rng.uniform(0, 2), 0.5 + 1e-12, 1 + 1e-12, 1.0])
            tokens = rng.choice([0, 1, 10, rng.randrange(0, 400), 5000, 29, 44, 250])  # some exactly a tpm
            got = store.admit(scopes, reserve, tokens, now)
            outcome, detail, rates = model.admit(scopes, reserve, tokens, now)
            assert as_tuple(got) == expected(outcome, detail, rates), f"step {step}"
            if outcome == "refused":
                assert got.refusal.scope is detail[1]
            else:
                ticket = got.ticket
                assert (ticket.scopes, ticket.reserve, ticket.tokens, ticket.settled) == \
                    (tuple(scopes), reserve, tokens, False)
                tickets.append((ticket, detail))
        elif op < 0.85 and tickets:
            ticket, shadow = tickets.pop(rng.randrange(len(tickets))) if rng.random() < 0.9 else rng.choice(tickets)
            cost = rng.choice([0.0, 0.05, shadow.reserve, rng.uniform(0, 1.5)])
            tokens = rng.choice([0, shadow.tokens, rng.randrange(0, 600)])
            store.settle(ticket, cost, tokens, now)
            model.settle(shadow, cost, tokens, now)
            assert ticket.settled
        elif op < 0.93:
            cost = rng.uniform(0, 0.5)
            store.record_spend(scopes, cost, now)
            model.record_spend(scopes, cost, now)
        elif op < 0.96:
            scope = rng.choice(list(scopes))
            budget = scope.max_budget if scope.max_budget is not None else 1.0
            spend = rng.choice([rng.uniform(0, 3), budget - 1e-12, budget - 2e-12, 0.0])  # at the edges of exceeds
            store.set_spend(scope, spend, now)
            model.set_spend(scope, spend, now)
        else:
            roll = rng.random()
            if roll < 0.1:
                scope = random_scope(rng, "user", f"ghost{step}")  # never seen: no slot
            elif roll < 0.3:
                kind = rng.choice(list(names))
                scope = limits[(kind, rng.choice(names[kind]))]
            else:
                scope = rng.choice(list(scopes))
            state = store.state(scope, now)
            assert (state.window_start, state.spend, state.reserved, state.in_flight) == model.state(scope, now)
            assert store.remaining(scope, now) == model.remaining(scope, now)
        if step % 50 == 0:
            assert file_slots(store) == model.slots, f"step {step}"
    assert file_slots(store) == model.slots
    for kind, ids in names.items():
        for i in ids:
            scope = limits[(kind, i)]
            state = store.state(scope, clock.now)
            assert (state.window_start, state.spend, state.reserved, state.in_flight) == model.state(scope, clock.now)
            assert store.remaining(scope, clock.now) == model.remaining(scope, clock.now)
    store.close()


def test_unknown_scope_state_and_remaining_create_nothing(tmp_path):
    store = open_store(tmp_path / "c")
    scope = ScopeLimits("user", "nobody", max_budget=1.0, duration=parse_duration("1d"), rpm=5, tpm=100)
    now = ts(2026, 3, 18, 15, 30)
    assert store.state(scope, now).window_start == window_start(scope.duration, now)
    assert store.remaining(scope, now) == (5, 100)
    assert file_slots(store) == {}


def test_month_window_cached_across_the_edge(tmp_path):
    """The compiled core caches each scope's window; within a microsecond of a month's end
    datetime rounds into the next month, and the core must agree with window_start there."""
    store, model = open_store(tmp_path / "c"), Model()
    scopes = (ScopeLimits("key", "k", max_budget=100.0, duration=parse_duration("1mo")),)
    end = ts(2026, 3, 1)
    for offset in (-86400.0, -2e-6, -1e-6, -6e-7, -5e-7, -4e-7, -1e-7, 0.0, 1e-7, -3e-7, 5.0):
        store.record_spend(scopes, 1.0, end + offset)
        model.record_spend(scopes, 1.0, end + offset)
        assert file_slots(store) == model.slots, offset
    assert store.state(scopes[0], end + 5.0).spend < 11.0, "the March window started from zero"


def test_budget_edges(tmp_path):
    """Exactly at ``exceeds``' tolerances: the compiled comparisons are the Python ones."""
    store, model = open_store(tmp_path / "c"), Model()
    key = (ScopeLimits("key", "k", max_budget=1.0),)
    for spend, reserve in ((0.0, 1 + 1e-12), (0.0, 1 + 2e-12), (1 - 1e-12, 0.0), (1 - 2e-12, 0.0), (0.5, 0.5)):
        store.set_spend(key[0], spend, 0.0)
        model.set_spend(key[0], spend, 0.0)
        assert as_tuple(store.admit(key, reserve, 0, 0.0)) == expected(*model.admit(key, reserve, 0, 0.0))
        assert file_slots(store) == model.slots


def test_budget_without_duration_never_resets(tmp_path):
    """A window start before the lifetime start (a clock before 1970 with a "30s" budget),
    then the duration is removed: the spend stays, though the window start moved forward."""
    store, model = open_store(tmp_path / "c"), Model()
    timed = (ScopeLimits("key", "k", max_budget=10.0, duration=parse_duration("30s")),)
    lifetime = (ScopeLimits("key", "k", max_budget=10.0),)
    for scopes, now in ((timed, -1000.5), (lifetime, -999.0), (lifetime, 5.0)):
        store.record_spend(scopes, 1.0, now)
        model.record_spend(scopes, 1.0, now)
        assert file_slots(store) == model.slots
    assert store.state(lifetime[0], 5.0).spend == 3.0


def test_duplicate_scopes_read_before_write(tmp_path):
    store, model = open_store(tmp_path / "c"), Model()
    key = ScopeLimits("key", "k", rpm=10, max_parallel=3)
    tickets = []
    for _ in range(3):
        got, want = store.admit([key, key], 0.5, 1, 0.0), model.admit([key, key], 0.5, 1, 0.0)
        assert as_tuple(got) == expected(*want)
        tickets.append((got.ticket, want[1]))
    assert file_slots(store) == model.slots
    for ticket, shadow in tickets:  # each settles the level twice: in flight stops at zero
        store.settle(ticket, 0.1, 1, 1.0)
        model.settle(shadow, 0.1, 1, 1.0)
    assert file_slots(store) == model.slots


def test_full_table_raises_and_releases_the_lock(tmp_path):
    store = open_store(tmp_path / "c", slots=4)
    for i in range(4):
        assert store.admit([ScopeLimits("key", f"k{i}", rpm=1)], 0.0, 0, 0.0).ticket is not None
    with pytest.raises(CounterStoreFull, match=r"full \(4 slots\)"):
        store.admit([ScopeLimits("key", "k0", max_parallel=5), ScopeLimits("team", "new")], 0.0, 0, 0.0)
    other = open_store(tmp_path / "c", slots=4)
    fcntl.flock(other.file.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if the lock leaked
    fcntl.flock(other.file.fd, fcntl.LOCK_UN)
    assert store.state(ScopeLimits("key", "k0"), 0.0).in_flight == 1, "the failed admission charged nothing"
    refused = store.admit([ScopeLimits("key", "k0", rpm=1), ScopeLimits("team", "new")], 0.0, 0, 0.0)
    assert refused.refusal.reason == "rpm", "a level refused before the new one is reached needs no slot for it"


def test_waits_for_a_lock_held_by_another_thread(tmp_path):
    """A worker holding the file lock blocks admission; the wait must not hold the GIL,
    or a holder running Python in the same process could never release it."""
    store, other = open_store(tmp_path / "c"), open_store(tmp_path / "c")
    held = threading.Event()

    def hold() -> None:
        with other.locked():
            held.set()
            time.sleep(0.3)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    started = time.monotonic()
    assert store.admit([ScopeLimits("key", "k", rpm=1)], 0.0, 0, 0.0).ticket is not None
    assert time.monotonic() - started > 0.2
    thread.join()


def test_an_exclusive_store_takes_no_lock(tmp_path):
    """The instance's only worker skips the flock: a lock someone holds does not make it wait."""
    from fastgw.governance.counters import SharedMemoryCounterStore

    other = open_store(tmp_path / "c")
    store = SharedMemoryCounterStore(str(tmp_path / "c"), "run-1", 64, 4096, exclusive=True)
    with store.locked():
        store.claim()
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with other.locked():
            held.set()
            release.wait(5)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait()
    started = time.monotonic()
    decision = store.admit([ScopeLimits("key", "k", rpm=1)], 0.0, 0, 0.0)
    assert decision.ticket is not None and time.monotonic() - started < 0.1
    release.set()
    thread.join()
    store.close()


def test_closed_store_refuses_instead_of_touching_freed_memory(tmp_path):
    store = open_store(tmp_path / "c")
    scope = ScopeLimits("key", "k", rpm=1)
    store.close()
    for call in (lambda: store.admit([scope], 0.0, 0, 0.0), lambda: store.state(scope, 0.0),
                 lambda: store.set_spend_locked(None, scope, 1.0, 0.0), store.head_generation):
        with pytest.raises(ValueError, match="closed"):
            call()


def test_reinitialised_file_forgets_learned_slots(tmp_path):
    store = open_store(tmp_path / "c")
    key = (ScopeLimits("key", "k", max_parallel=1),)
    assert store.admit(key, 0.0, 0, 0.0).ticket is not None
    store.instance = "run-2"
    with store.locked():
        assert store.claim()
    assert store.admit(key, 0.0, 0, 0.0).ticket is not None, "counters start empty"
    assert list(file_slots(store).values()) == [[0.0, 0.0, 0.0, 0.0, 0.0, 1]]


# -- two processes, one file ------------------------------------------------------------

WORKER = textwrap.dedent("""
    import sys
    from fastgw.governance.counters import ScopeLimits, SharedMemoryCounterStore
    path, me, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = SharedMemoryCounterStore(path, "run-1", 64, 4096)
    fast = 60 * 2 ** 20  # per minute: an interval of 2**-20 s, so clocks add up exactly
    shared = (ScopeLimits("key", me, max_budget=1e9, rpm=fast, tpm=fast),
              ScopeLimits("team", "t", max_budget=1e9, rpm=fast, tpm=fast, max_parallel=10 ** 6),
              ScopeLimits("user", "u", rpm=fast))
    print("ready", flush=True)
    sys.stdin.readline()
    kept = 0
    for i in range(n):
        ticket = store.admit(shared, 0.5, 1, 0.0).ticket
        assert ticket is not None
        if i % 3:
            store.settle(ticket, 0.25, 1, 0.0)
        else:
            kept += 1
        if i % 500 == 0:
            store.publish(me.encode())
    print(kept, flush=True)
""")


def test_two_processes_lose_no_update(tmp_path):
    path = tmp_path / "c"
    open_store(path).close()
    n = 6000
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(path), me, str(n)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True) for me in ("a", "b")]
    for proc in procs:
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:  # start together, so they contend for the lock
        proc.stdin.write("go\n")
        proc.stdin.flush()
    kept = [int(proc.stdout.readline()) for proc in procs]
    for proc in procs:
        assert proc.wait(60) == 0
    store = open_store(path)
    settled = 2 * n - sum(kept)
    team = store.state(ScopeLimits("team", "t", max_budget=1e9), 0.0)
    assert (team.spend, team.reserved, team.in_flight) == (settled * 0.25, sum(kept) * 0.5, sum(kept))
    slots = file_slots(store)
    clock = 2 * n * 2.0 ** -20
    assert slots[ident_of("team", "t")][3:5] == [clock, clock]
    assert slots[ident_of("user", "u")][3] == clock
    for me, mine in zip("ab", kept):
        key = slots[ident_of("key", me)]
        assert key[1:3] == [(n - mine) * 0.25, mine * 0.5] and key[5] == mine
    assert store.head_generation() == 2 * math.ceil(n / 500)
