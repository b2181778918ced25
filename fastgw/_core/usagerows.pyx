# cython: language_level=3
"""Usage rows in the form SQLite binds without adapting a single value.

Why compiled: Python's ``sqlite3`` sends every parameter that is not an exact int, float,
str or bytearray through its adapter registry (a tuple key, a dict miss, two attribute
lookups), ``None`` and ``bool`` included. A usage row has about 7 ``None`` and 4 ``bool``
values: binding it cost 5.6 us, against 2.0 us for the same row without them
(``executemany`` of 4-row chunks into an in-memory table). That is CPU the usage writer
takes from the gateway's core, holding the GIL. A ``None`` text value becomes the integer 0,
which the INSERT turns back into NULL (``NULLIF(?, 0)``: a text value never equals an
integer); a ``None`` real becomes NaN, which SQLite itself stores as NULL; a bool becomes 0
or 1, which is what SQLite stores for it anyway.
"""
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE, PyTuple_New, PyTuple_SET_ITEM
from cpython.ref cimport Py_INCREF

cdef object _NAN = float("nan")
cdef object _ZERO = 0
cdef object _ONE = 1

cdef enum:
    _KEEP = 107  # b"k": bound as it is (never None)
    _TEXT = 116  # b"t": str or None; None -> 0, NULLIF(?, 0) in the statement
    _REAL = 114  # b"r": float or None; None -> NaN
    _BOOL = 98  # b"b": bool -> 0 or 1

KEEP = _KEEP
TEXT = _TEXT
REAL = _REAL
BOOL = _BOOL


cdef tuple _row(tuple row, const unsigned char[:] kinds):
    cdef Py_ssize_t i, n = PyTuple_GET_SIZE(row)
    cdef tuple out
    cdef object value
    cdef unsigned char kind
    if n != kinds.shape[0]:
        raise ValueError(f"a usage row of {n} values for {kinds.shape[0]} columns")
    out = PyTuple_New(n)
    for i in range(n):
        value = <object>PyTuple_GET_ITEM(row, i)
        kind = kinds[i]
        if value is None:
            if kind == _TEXT:
                value = _ZERO
            elif kind == _REAL:
                value = _NAN
        elif kind == _BOOL:
            value = _ONE if value else _ZERO
        Py_INCREF(value)
        PyTuple_SET_ITEM(out, i, value)
    return out


def bindable(list rows, bytes kinds) -> list:
    """``rows`` (tuples, one value per column) with each value in the form its kind binds
    as: ``kinds`` holds one of ``KEEP``, ``TEXT``, ``REAL``, ``BOOL`` per column."""
    cdef const unsigned char[:] view = kinds
    return [_row(<tuple?>row, view) for row in rows]
