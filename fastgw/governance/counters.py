"""Counters shared by all workers of an instance: spend, reservations, rate limits, in-flight.

``CounterStore`` is the interface admission talks to; ``SharedMemoryCounterStore`` keeps
the counters in a mapped file (see ``shm.py``) so ``--workers N`` enforces one budget and
one limit, not N. Every admission reads and updates all its scopes (key, team, user)
under one lock, so a request is admitted by every level or by none. A store shared by
several instances (Redis: one Lua script per admit/settle, a stream for the change feed)
implements the same two protocols.

Slot layout (64 bytes, ``<16sdddddq``): ident (16-byte BLAKE2b of "kind:id"), window start,
spend in the window, outstanding reservations, RPM and TPM GCRA arrival times, requests in
flight; a slot is probed linearly from its ident's first 8 bytes (little-endian). Slots are
read and written only by the compiled ``CounterCore`` (fastgw/_core/counters.pyx), whose
arithmetic is that of ``budgets.exceeds``, ``ratelimit.gcra`` and ``durations.window_start``.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Protocol, Sequence

from .._core.counters import CounterCore
from ..durations import Duration
from . import shm
from .journal import Journal

SLOT_SIZE = 64
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
    """The tightest request and token limits seen by one admission (for x-ratelimit-* headers):
    of the scopes checked, the one with the fewest left (the first of equals)."""

    limit_requests: int | None = None
    remaining_requests: int | None = None
    limit_tokens: int | None = None
    remaining_tokens: int | None = None


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


class SharedMemoryCounterStore(CounterCore):
    """``CounterStore`` and ``ChangeFeed`` over one mapped file; open-addressed slot table.

    Every slot operation (``admit``, ``settle``, ``record_spend``, ``state``, ``remaining``,
    ``set_spend``, ``head_generation``) is compiled: ``CounterCore`` in
    fastgw/_core/counters.pyx. This class owns the file, its header and the change feed.
    """

    def __init__(self, path: str, instance: str, slots: int = DEFAULT_SLOTS,
                 journal_bytes: int = DEFAULT_JOURNAL_BYTES, exclusive: bool = False) -> None:
        """``exclusive``: the caller is its instance's only worker (slot operations then skip the lock)."""
        if slots & (slots - 1):
            raise ValueError("slots must be a power of two")
        self.slots = slots
        self._slot_base = shm.HEADER_SIZE
        self.journal = Journal(self._slot_base + slots * SLOT_SIZE, journal_bytes)
        self.file = shm.SharedFile(path, self.journal.offset + journal_bytes)
        self.instance = instance
        self.fresh = False
        self.map_slots(self.file.map, self.file.fd, self._slot_base, slots, exclusive)

    # -- lifecycle ------------------------------------------------------------------
    def claim(self) -> bool:
        """Take the file for this instance; call under ``locked()``. True: counters start empty."""
        self.fresh = shm.claim(self.file.view, self.instance, self.slots, self.journal.size)
        if self.fresh:
            self.forget()  # slot offsets learned before the reset no longer hold
        return self.fresh

    def locked(self):  # noqa: ANN201 - a context manager
        return self.file.locked()

    def close(self) -> None:
        self.unmap()  # the compiled core holds the mapping's buffer; the mmap cannot close under it
        self.file.close()

    # -- change feed ----------------------------------------------------------------
    def publish(self, payload: bytes) -> int:
        with self.file.locked() as view:
            return self.journal.append(view, payload)

    def cursor(self) -> tuple[int, int]:
        with self.file.locked() as view:
            return self.journal.head(view)

    def cursor_locked(self, view: memoryview) -> tuple[int, int]:
        return self.journal.head(view)

    def changes_since(self, cursor: tuple[int, int]) -> tuple[list[bytes], tuple[int, int]]:
        with self.file.locked() as view:
            return self.journal.read_since(view, cursor)
