"""A file mapped into every worker of one instance, guarded by an exclusive ``flock``.

Why a mapped file and not the database: admission runs on every request and must not
wait on SQLite (locks, fsync, a deleted file). A lock + a few struct reads/writes in
shared memory cost microseconds and cannot fail the way a database can. ``flock`` is
released by the kernel if a worker dies holding it, so a crash never wedges the others.

The file belongs to one running instance (``instance`` in the header, set by ``fastgw
serve`` for all its workers); a worker of a new instance finds a different id and
re-initialises it, so counters never leak across restarts.
"""
from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import struct
from typing import Iterator

MAGIC = b"FGWGOV01"
HEADER_SIZE = 4096
# magic, layout version, instance id (32 hex chars), slot capacity, journal size,
# journal generation, journal write position (absolute bytes), generation of the last full rebuild
_HEADER = struct.Struct("<8sq32sqqqqq")
LAYOUT_VERSION = 1


class SharedFile:
    """The mapped file; ``locked()`` serialises every read-modify-write across processes."""

    def __init__(self, path: str, size: int) -> None:
        self.path = path
        self.size = size
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self.fd).st_size < size:
            os.ftruncate(self.fd, size)
        self.map = mmap.mmap(self.fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        self.view = memoryview(self.map)

    @contextlib.contextmanager
    def locked(self) -> Iterator[memoryview]:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield self.view
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def close(self) -> None:
        self.view.release()
        self.map.close()
        os.close(self.fd)


def read_header(view: memoryview) -> tuple:
    return _HEADER.unpack_from(view, 0)


def claim(view: memoryview, instance: str, slots: int, journal_size: int) -> bool:
    """Make the file this instance's (call with the lock held). True if it was (re)initialised."""
    magic, version, owner, cap, jsize, _gen, _pos, _rebuilt = _HEADER.unpack_from(view, 0)
    mine = instance.encode().ljust(32, b"\0")[:32]
    if magic == MAGIC and version == LAYOUT_VERSION and owner == mine and cap == slots and jsize == journal_size:
        return False
    view[:] = b"\0" * len(view)
    _HEADER.pack_into(view, 0, MAGIC, LAYOUT_VERSION, mine, slots, journal_size, 0, 0, 0)
    return True


JOURNAL_GEN_OFFSET = 8 + 8 + 32 + 8 + 8  # header offset of the journal generation
JOURNAL_POS_OFFSET = JOURNAL_GEN_OFFSET + 8
_Q = struct.Struct("<q")


def read_q(view: memoryview, offset: int) -> int:
    return _Q.unpack_from(view, offset)[0]


def write_q(view: memoryview, offset: int, value: int) -> None:
    _Q.pack_into(view, offset, value)
