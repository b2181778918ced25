# cython: language_level=3
"""Time slices for the usage writer thread, down to SQLite's file writes.

Why compiled: the writer shares the gateway's core, and this kernel lets a thread that
never blocks or yields keep the core until the next tick (1-4 ms) even when a request has
arrived; only ``sched_yield`` hands it over at once (measured: an idle-only busy loop on the
gateway's core gave p99 2.4 ms at c=1, the same loop calling ``pwrite`` 2.5 ms, yielding
every ~20 us 0.39 ms). Python code and SQLite's progress handler can check the slice
between rows and VM steps, but a COMMIT is one call: at c=1 it took 0.4-7.5 ms of CPU per
0.2-s batch writing WAL frames and checkpointing, with no way to yield from Python.

So this module registers a SQLite VFS that wraps the default one and checks the calling
thread's slice before every read, write, truncate and sync of a file it opened. The slice
is per thread (``set_quantum``); a thread that never set one never yields here, so other
connections that happen to use the VFS are unaffected.

The SQLite library is the one Python's ``sqlite3`` module loaded: its symbols are looked
up through that module's handle (``register``), so nothing links against SQLite at build
time. Where they cannot be found (an SQLite linked statically with hidden symbols),
``register`` returns False and the writer only checks its slice between statements.
"""

cdef extern from "writerslice_vfs.h" nogil:
    int fg_vfs_register(const char *library, const char *name)
    int fg_slice_due()
    void fg_slice_yield()
    void fg_slice_set_quantum(double seconds, double longest)
    double fg_slice_current()
    void fg_slice_restart()
    double fg_slice_quantum()
    unsigned long fg_slice_yields()
    unsigned long fg_slice_vfs_yields()


def register(library: str, name: str) -> bool:
    """Register the yielding VFS ``name`` over the default VFS of the SQLite that ``library``
    (a loaded shared object: ``_sqlite3.__file__``) links. True if registered (or already)."""
    cdef bytes lib = library.encode()
    cdef bytes vfs = name.encode()
    return fg_vfs_register(lib, vfs) == 0


def slice_check() -> None:
    """Yield the core if this thread has run for its quantum since it last yielded.

    Also used as SQLite's progress handler: it must return None (a true value aborts the
    statement)."""
    if fg_slice_due():  # checked with the GIL held: releasing it on every check handed it to
        with nogil:      # a busy event loop and made the writer wait for it back (c=32: queue x2.5)
            fg_slice_yield()  # a yield with the GIL held would hand over the core, not the interpreter


def set_quantum(seconds: float, longest: float = 0.0) -> None:
    """This thread's slice: how long it runs between two yields (inf: never yields). A yield
    that waited 1 ms or more (a saturated core) doubles it, up to ``longest`` (inf: until it
    stops yielding); one that came back within 0.3 ms shrinks it by a fifth, down to
    ``seconds``. Each call starts from ``seconds``."""
    fg_slice_set_quantum(seconds, longest)


def restart() -> None:
    """Start a new slice now (the thread has just blocked or yielded by other means)."""
    fg_slice_restart()


def quantum() -> float:
    """This thread's base quantum (``set_quantum``)."""
    return fg_slice_quantum()


def current() -> float:
    """The quantum in force now (grown on a saturated core)."""
    return fg_slice_current()


def yields() -> int:
    """Yields made so far by all threads (tests, diagnostics)."""
    return fg_slice_yields()


def vfs_yields() -> int:
    """Of ``yields()``, those made inside a file read, write, truncate or sync of the VFS."""
    return fg_slice_vfs_yields()
