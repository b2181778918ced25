"""Type stubs for the compiled counter core (fastgw/_core/counters.pyx).

``fastgw.governance.counters.SharedMemoryCounterStore`` is the class to use: it opens the
file, then calls ``map_slots``; these methods are its slot operations.
"""

import mmap
from typing import Sequence

from fastgw.governance.counters import Decision, ScopeLimits, ScopeState, Ticket

class CounterCore:
    def map_slots(self, mapping: mmap.mmap, fd: int, slot_base: int, slots: int,
                  exclusive: bool = False) -> None:
        """Work on ``slots`` 64-byte slots at ``slot_base`` of ``mapping``, locking with
        ``flock(fd)``; holds a buffer of the mapping until ``unmap``."""
    def unmap(self) -> None:
        """Release the mapping (call before closing it); every operation then raises ValueError."""
    def forget(self) -> None:
        """Drop cached slot offsets and limits: the file was re-initialised."""
    def admit(self, scopes: Sequence[ScopeLimits], reserve: float, tokens: int, now: float) -> Decision:
        """Under one lock: every scope passes (budget window, ``exceeds``, max_parallel, GCRA rpm
        and tpm) and all are charged, or none is and the first refusal is returned. ``rate``
        holds the tightest rpm and tpm seen, the refusing scope's included."""
    def settle(self, ticket: Ticket, cost: float, tokens: int, now: float) -> None:
        """Once per ticket: ``cost`` is spent, the reservation and the in-flight place freed
        (clamped at 0), the TPM clock corrected by ``tokens - ticket.tokens``."""
    def record_spend(self, scopes: Sequence[ScopeLimits], cost: float, now: float) -> None:
        """Spend of a request that held no ticket."""
    def state(self, scope: ScopeLimits, now: float) -> ScopeState:
        """The scope's counters in the window of ``now`` (zeros if it has no slot; none is made)."""
    def remaining(self, scope: ScopeLimits, now: float) -> tuple[int | None, int | None]:
        """Requests and tokens left this minute (None where the scope has no such limit)."""
    def set_spend(self, scope: ScopeLimits, spend: float, now: float) -> None:
        """Set the spend of the window of ``now`` (recounted from the usage database)."""
    def set_spend_locked(self, view: object, scope: ScopeLimits, spend: float, now: float) -> None:
        """``set_spend`` for a caller already inside ``locked()``; ``view`` is unused."""
    def head_generation(self) -> int:
        """The change feed's generation, read without the lock (an aligned 8-byte load)."""
