"""Type stubs for the usage writer's time slices (fastgw/_core/writerslice.pyx)."""

def register(library: str, name: str) -> bool:
    """Register the yielding SQLite VFS ``name`` over the default VFS of the SQLite that the
    loaded shared object ``library`` links (``_sqlite3.__file__``). True if registered, now or
    before under the same name; False if SQLite's API is not found or another name was used."""
def slice_check() -> None:
    """Yield the core (GIL released) if this thread has run for its quantum since its last
    yield. Safe as SQLite's progress handler: it never aborts the statement."""
def set_quantum(seconds: float, longest: float = 0.0) -> None:
    """This thread's quantum; ``inf`` (the default): never yields. A yield that waited 1 ms
    or more doubles it, up to ``longest`` (``inf``: until it stops yielding); a quick one
    shrinks it by a fifth, down to ``seconds``."""
def restart() -> None:
    """Start this thread's slice now."""
def quantum() -> float:
    """This thread's base quantum (``inf`` if none)."""
def current() -> float:
    """The quantum in force now."""
def yields() -> int:
    """Yields made by all threads so far."""
def vfs_yields() -> int:
    """Of those, yields made inside a file read, write, truncate or sync of the VFS."""
