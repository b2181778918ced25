"""The change feed that keeps every worker's key cache current without reading the database.

An admin call that changes a key, team or user appends the entity's new state here (after
committing it to SQLite); every worker applies new entries before it authenticates the
next request, so a change made through one worker holds in all of them at once. The feed
is a ring of records in the shared file: [generation q][length q][payload]. Readers keep
an absolute byte position; a reader more than one ring behind has lost entries and
reloads from the database instead (``JournalLost``).
"""
from __future__ import annotations

import struct

from .shm import JOURNAL_GEN_OFFSET, JOURNAL_POS_OFFSET, read_q, write_q

_RECORD = struct.Struct("<qq")
_WRAP = -1  # generation of a record that says "continue at the start of the ring"


class JournalLost(Exception):
    """The reader fell a whole ring behind: entries were overwritten."""


class JournalFull(Exception):
    """A single entry larger than the ring."""


def _align(n: int) -> int:
    return (n + 7) & ~7


class Journal:
    """Append and read on a region of the shared view; callers hold the file lock."""

    def __init__(self, offset: int, size: int) -> None:
        self.offset = offset
        self.size = size

    def head(self, view: memoryview) -> tuple[int, int]:
        """(generation of the last entry, absolute position of the next write)."""
        return read_q(view, JOURNAL_GEN_OFFSET), read_q(view, JOURNAL_POS_OFFSET)

    def append(self, view: memoryview, payload: bytes) -> int:
        need = _RECORD.size + _align(len(payload))
        if need > self.size:
            raise JournalFull(f"change of {len(payload)} bytes is larger than the change feed")
        gen, pos = self.head(view)
        at = pos % self.size
        if at + need > self.size:  # no room before the end: mark the wrap and restart at 0
            if self.size - at >= _RECORD.size:
                _RECORD.pack_into(view, self.offset + at, _WRAP, 0)
            pos += self.size - at
            at = 0
        gen += 1
        _RECORD.pack_into(view, self.offset + at, gen, len(payload))
        start = self.offset + at + _RECORD.size
        view[start:start + len(payload)] = payload
        write_q(view, JOURNAL_POS_OFFSET, pos + need)
        write_q(view, JOURNAL_GEN_OFFSET, gen)
        return gen

    def read_since(self, view: memoryview, cursor: tuple[int, int]) -> tuple[list[bytes], tuple[int, int]]:
        """Entries after ``cursor`` (generation, position) and the new cursor."""
        gen, pos = cursor
        head_gen, head_pos = self.head(view)
        if head_gen == gen:
            return [], cursor
        if head_pos - pos > self.size or head_gen < gen:
            raise JournalLost()
        out: list[bytes] = []
        while pos < head_pos:
            at = pos % self.size
            if self.size - at < _RECORD.size:
                pos += self.size - at
                continue
            record_gen, length = _RECORD.unpack_from(view, self.offset + at)
            if record_gen == _WRAP:
                pos += self.size - at
                continue
            if record_gen != gen + 1:
                raise JournalLost()
            start = self.offset + at + _RECORD.size
            out.append(bytes(view[start:start + length]))
            gen = record_gen
            pos += _RECORD.size + _align(length)
        return out, (gen, pos)
