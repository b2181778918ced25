# Declarations so the compiled server can kick the poller with a C call.


cdef class BusyPoll:
    cdef object _call_soon
    cdef readonly double window  # seconds of polling after the last activity (0: never poll)
    cdef readonly double gap
    cdef readonly bint active
    cdef readonly unsigned long long steps  # idle poll steps run (each one yield of the core)
    cdef readonly unsigned long long kicks  # times polling (re)started from sleep
    cdef double deadline
    cdef double _last

    cpdef void kick(self)
