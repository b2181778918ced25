"""Counters shared by all workers of an instance: spend, reservations, rate limits, in-flight.

``CounterStore`` is the interface admission talks to; ``SharedMemoryCounterStore`` keeps
the counters in a mapped file (see ``shm.py``) so ``--workers N`` enforces one budget and
one limit, not N. Every admission reads and updates all its scopes (key, team, user)
under one lock, so a request is admitted by every level or by none. A store shared by
several instances (Redis: one Lua script per admit/settle, a stream for the change feed)
implements the same two protocols.

Slot layout (64 bytes): ident (16-byte BLAKE2b of "kind:id"), window start, spend in the
window, outstanding reservations, RPM and TPM GCRA arrival times, requests in flight.
"""
from __future__ import annotations

import hashlib
import struct
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from . import shm
from .budgets import exceeds
from .durations import Duration, window_start
from .journal import Journal
from .ratelimit import GcraResult, gcra, remaining_after

_SLOT = struct.Struct("<16sdddddq")
SLOT_SIZE = 64
_EMPTY = b"\0" * 16
DEFAULT_SLOTS = 1 << 16  # 65,536 keys + teams + users; 4 MiB
DEFAULT_JOURNAL_BYTES = 4 << 20


class CounterStoreFull(Exception):
    """No free slot for a new key, team or user (raise ``governance_counter_slots``)."""


@dataclass(frozen=True, slots=True)
class ScopeLimits:
    """One level a request must pass, with the limits it carries."""

    kind: str  # key | team | user
    id: str
    max_budget: float | None = None
    duration: Duration | None = None
    rpm: int | None = None
    tpm: int | None = None
    max_parallel: int | None = None


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: str  # budget | parallel | rpm | tpm
    scope: ScopeLimits
    spend: float = 0.0
    reserved: float = 0.0
    limit: float = 0.0
    retry_after: float = 0.0
    impossible: bool = False  # the request alone is over the limit


@dataclass(slots=True)
class RateView:
    """The tightest request and token limits seen by one admission (for x-ratelimit-* headers)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None

    def note_requests(self, limit: int, remaining: int) -> None:
        if self.remaining_requests is None or remaining < self.remaining_requests:
            self.limit_requests, self.remaining_requests = limit, remaining

    def note_tokens(self, limit: int, remaining: int) -> None:
        if self.remaining_tokens is None or remaining < self.remaining_tokens:
            self.limit_tokens, self.remaining_tokens = limit, remaining


@dataclass(slots=True)
class Ticket:
    """What one admitted request holds until it is settled."""

    scopes: tuple[ScopeLimits, ...]
    reserve: float
    tokens: int
    settled: bool = False


@dataclass(slots=True)
class Decision:
    ticket: Ticket | None
    refusal: Refusal | None
    rate: RateView = field(default_factory=RateView)


@dataclass(frozen=True, slots=True)
class ScopeState:
    window_start: float
    spend: float
    reserved: float
    in_flight: int


class CounterStore(Protocol):
    def admit(self, scopes: Sequence[ScopeLimits], reserve: float, tokens: int, now: float) -> Decision: ...

    def settle(self, ticket: Ticket, cost: float, tokens: int, now: float) -> None: ...

    def state(self, scope: ScopeLimits, now: float) -> ScopeState: ...

    def set_spend(self, scope: ScopeLimits, spend: float, now: float) -> None: ...


class ChangeFeed(Protocol):
    def publish(self, payload: bytes) -> int: ...

    def cursor(self) -> tuple[int, int]: ...

    def changes_since(self, cursor: tuple[int, int]) -> tuple[list[bytes], tuple[int, int]]: ...


@lru_cache(maxsize=65536)
def ident_of(kind: str, ident: str) -> bytes:
    return hashlib.blake2b(f"{kind}:{ident}".encode(), digest_size=16).digest()


class SharedMemoryCounterStore:
    """``CounterStore`` and ``ChangeFeed`` over one mapped file; open-addressed slot table."""

    def __init__(self, path: str, instance: str, slots: int = DEFAULT_SLOTS,
                 journal_bytes: int = DEFAULT_JOURNAL_BYTES) -> None:
        if slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self.slots = slots
        self._slot_base = shm.HEADER_SIZE
        self.journal = Journal(self._slot_base + slots * SLOT_SIZE, journal_bytes)
        self.file = shm.SharedFile(path, self.journal.offset + journal_bytes)
        self.instance = instance
        self._index: dict[bytes, int] = {}  # ident -> slot offset, learned per worker (slots never move)
        self.fresh = False

    # -- lifecycle ------------------------------------------------------------------
    def claim(self) -> bool:
        """Take the file for this instance; call under ``locked()``. True: counters start empty."""
        self.fresh = shm.claim(self.file.view, self.instance, self.slots, self.journal.size)
        if self.fresh:
            self._index.clear()
        return self.fresh

    def locked(self):  # noqa: ANN201 - a context manager
        return self.file.locked()

    def close(self) -> None:
        self.file.close()

    # -- slots ----------------------------------------------------------------------
    def _slot(self, view: memoryview, ident: bytes, create: bool = True) -> int | None:
        offset = self._index.get(ident)
        if offset is not None:
            return offset
        mask = self.slots - 1
        i = int.from_bytes(ident[:8], "little") & mask
        for _ in range(self.slots):
            offset = self._slot_base + i * SLOT_SIZE
            stored = bytes(view[offset:offset + 16])
            if stored == ident:
                self._index[ident] = offset
                return offset
            if stored == _EMPTY:
                if not create:
                    return None
                _SLOT.pack_into(view, offset, ident, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
                self._index[ident] = offset
                return offset
            i = (i + 1) & mask
        raise CounterStoreFull(f"the counter store is full ({self.slots} slots)")

    @staticmethod
    def _windowed(values: list, scope: ScopeLimits, now: float) -> None:
        """Start a new budget window if the scope's has ended (values[1] window start, [2] spend)."""
        start = window_start(scope.duration, now)
        if values[1] != start:
            if scope.duration is not None and start > values[1]:
                values[2] = 0.0  # the window ended: the budget resets on schedule
            values[1] = start

    # -- admission ------------------------------------------------------------------
    def admit(self, scopes: Sequence[ScopeLimits], reserve: float, tokens: int, now: float) -> Decision:
        rate = RateView()
        with self.file.locked() as view:
            loaded: list[tuple[int, list, GcraResult | None, GcraResult | None]] = []
            for scope in scopes:
                offset = self._slot(view, ident_of(scope.kind, scope.id))
                assert offset is not None
                values = list(_SLOT.unpack_from(view, offset))
                self._windowed(values, scope, now)
                _, _, spend, reserved, rpm_tat, tpm_tat, in_flight = values
                if scope.max_budget is not None and exceeds(spend, reserved, reserve, scope.max_budget):
                    return Decision(None, Refusal("budget", scope, spend, reserved, scope.max_budget), rate)
                if scope.max_parallel is not None and in_flight >= scope.max_parallel:
                    return Decision(None, Refusal("parallel", scope, limit=scope.max_parallel, retry_after=1.0), rate)
                rpm = gcra(rpm_tat, now, 1, scope.rpm) if scope.rpm else None
                if rpm is not None:
                    if not rpm.allowed:
                        rate.note_requests(scope.rpm, rpm.remaining)  # type: ignore[arg-type]
                        return Decision(None, Refusal("rpm", scope, limit=scope.rpm, retry_after=rpm.retry_after), rate)
                    rate.note_requests(scope.rpm, rpm.remaining)  # type: ignore[arg-type]
                tpm = gcra(tpm_tat, now, tokens, scope.tpm) if scope.tpm else None
                if tpm is not None:
                    if not tpm.allowed:
                        rate.note_tokens(scope.tpm, tpm.remaining)  # type: ignore[arg-type]
                        return Decision(None, Refusal("tpm", scope, limit=scope.tpm, retry_after=tpm.retry_after,
                                                      impossible=tpm.impossible), rate)
                    rate.note_tokens(scope.tpm, tpm.remaining)  # type: ignore[arg-type]
                loaded.append((offset, values, rpm, tpm))
            for offset, values, rpm, tpm in loaded:
                values[3] += reserve
                if rpm is not None:
                    values[4] = rpm.tat
                if tpm is not None:
                    values[5] = tpm.tat
                values[6] += 1
                _SLOT.pack_into(view, offset, *values)
        return Decision(Ticket(tuple(scopes), reserve, tokens), None, rate)

    def settle(self, ticket: Ticket, cost: float, tokens: int, now: float) -> None:
        if ticket.settled:
            return
        ticket.settled = True
        with self.file.locked() as view:
            for scope in ticket.scopes:
                offset = self._slot(view, ident_of(scope.kind, scope.id))
                assert offset is not None
                values = list(_SLOT.unpack_from(view, offset))
                self._windowed(values, scope, now)
                values[2] += cost
                values[3] = max(0.0, values[3] - ticket.reserve)
                if scope.tpm:
                    values[5] += (tokens - ticket.tokens) * (60.0 / scope.tpm)
                values[6] = max(0, values[6] - 1)
                _SLOT.pack_into(view, offset, *values)

    def record_spend(self, scopes: Sequence[ScopeLimits], cost: float, now: float) -> None:
        """Spend of a request that held no ticket (the master key or an unlimited key)."""
        with self.file.locked() as view:
            for scope in scopes:
                offset = self._slot(view, ident_of(scope.kind, scope.id))
                assert offset is not None
                values = list(_SLOT.unpack_from(view, offset))
                self._windowed(values, scope, now)
                values[2] += cost
                _SLOT.pack_into(view, offset, *values)

    def state(self, scope: ScopeLimits, now: float) -> ScopeState:
        with self.file.locked() as view:
            offset = self._slot(view, ident_of(scope.kind, scope.id), create=False)
            if offset is None:
                return ScopeState(window_start(scope.duration, now), 0.0, 0.0, 0)
            values = list(_SLOT.unpack_from(view, offset))
        self._windowed(values, scope, now)
        return ScopeState(values[1], values[2], values[3], values[6])

    def remaining(self, scope: ScopeLimits, now: float) -> tuple[int | None, int | None]:
        """Requests and tokens left this minute (None where the scope has no such limit)."""
        with self.file.locked() as view:
            offset = self._slot(view, ident_of(scope.kind, scope.id), create=False)
            values = _SLOT.unpack_from(view, offset) if offset is not None else (b"", 0, 0, 0, 0.0, 0.0, 0)
        return (remaining_after(values[4], now, scope.rpm) if scope.rpm else None,
                remaining_after(values[5], now, scope.tpm) if scope.tpm else None)

    def set_spend(self, scope: ScopeLimits, spend: float, now: float) -> None:
        with self.file.locked() as view:
            self.set_spend_locked(view, scope, spend, now)

    def set_spend_locked(self, view: memoryview, scope: ScopeLimits, spend: float, now: float) -> None:
        offset = self._slot(view, ident_of(scope.kind, scope.id))
        assert offset is not None
        values = list(_SLOT.unpack_from(view, offset))
        values[1] = window_start(scope.duration, now)
        values[2] = spend
        _SLOT.pack_into(view, offset, *values)

    # -- change feed ----------------------------------------------------------------
    def publish(self, payload: bytes) -> int:
        with self.file.locked() as view:
            return self.journal.append(view, payload)

    def cursor(self) -> tuple[int, int]:
        with self.file.locked() as view:
            return self.journal.head(view)

    def cursor_locked(self, view: memoryview) -> tuple[int, int]:
        return self.journal.head(view)

    def head_generation(self) -> int:
        """Unlocked peek (an aligned 8-byte read) so the request path skips the lock when nothing changed."""
        return shm.read_q(self.file.view, shm.JOURNAL_GEN_OFFSET)

    def changes_since(self, cursor: tuple[int, int]) -> tuple[list[bytes], tuple[int, int]]:
        with self.file.locked() as view:
            return self.journal.read_since(view, cursor)
