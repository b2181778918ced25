# Declarations of the framing decoders so other Cython modules can cimport the types
# and read their attributes without Python attribute lookups.

cdef struct _Buf:
    # Growable byte buffer; bytes [start, len) are unconsumed.
    char* data
    Py_ssize_t start
    Py_ssize_t len
    Py_ssize_t cap


cdef class SSEDecoder:
    cdef _Buf _line          # the unfinished line carried over between feeds
    cdef bint _skip_lf       # last feed ended in \r: drop a \n that starts the next one
    cdef bint _started       # first line seen (a leading UTF-8 BOM is stripped once)
    cdef bint _in_event      # a field line of the current event has been seen
    cdef object _event       # event name (str) or None
    cdef object _data        # first data line (bytes) or None if no data field yet
    cdef list _more          # further data lines, or None

    cdef int _on_line(self, const char* s, Py_ssize_t n, list out) except -1
    cdef int _dispatch(self, list out) except -1


cdef class NDJSONDecoder:
    cdef _Buf _line

    cdef int _on_line(self, const char* s, Py_ssize_t n, list out) except -1


cdef class EventStreamMessage:
    cdef readonly dict headers
    cdef readonly bytes payload


cdef class EventStreamDecoder:
    cdef _Buf _buf
    cdef object _error       # first EventStreamError raised; the decoder stays failed

    cdef Py_ssize_t _parse(self, const unsigned char* p, Py_ssize_t n, list out) except -1
    cdef int _fail(self, list out, str message) except -1
