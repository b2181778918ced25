# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
# distutils: extra_compile_args = -O3
"""Exact BPE tokenisation for OpenAI's ``o200k_base`` and ``cl100k_base`` encodings.

The gateway counts prompt tokens on every request (budget reservations), so this module
avoids both the ``regex`` dependency and Python objects in the inner loops:

* the pre-tokeniser re-implements each encoding's split regex as a hand-written scanner
  over the UTF-8 bytes of the text (leftmost-first alternation and backtracking resolved
  by hand, see ``_next_cl100k`` / ``_next_o200k``);
* Unicode categories come from a two-stage lookup table built once from ``unicodedata``
  and corrected to Unicode 16.0, the version of the Rust regex crate inside tiktoken
  0.14, so results do not depend on the interpreter's Unicode version;
* the byte-pair merge runs over C arrays, looking ranks up in an open-addressing hash
  table (plus direct tables for 1- and 2-byte tokens).

The rank files ship as package data (``fastgw/data/tokenizers``) and are read lazily, on
the first ``load_encoding`` call; nothing is ever downloaded.
"""

import gzip
import hashlib
import os
import re
import unicodedata

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.list cimport PyList_New, PyList_SET_ITEM
from cpython.long cimport PyLong_FromUnsignedLong
from cpython.ref cimport Py_INCREF
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcmp, memcpy, memmove, memset


cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object, Py_ssize_t*) except NULL


# --------------------------------------------------------------------------------------------
# Unicode classes
# --------------------------------------------------------------------------------------------

cdef enum:
    C_LU = 1      # Lu, Lt
    C_LL = 2      # Ll
    C_LO = 4      # Lm, Lo
    C_M = 8       # Mn, Mc, Me
    C_N = 16      # Nd, Nl, No
    C_WS = 32     # White_Space (what \s means in the Rust regex crate)
    C_L = 7       # \p{L}
    C_U = 13      # o200k's [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
    C_W = 14      # o200k's [\p{Ll}\p{Lm}\p{Lo}\p{M}]
    C_LN = 23     # \p{L} or \p{N}
    C_LNWS = 55   # \s, \p{L} or \p{N}: a char outside this is [^\s\p{L}\p{N}]

cdef uint32_t NO_RANK = 0xFFFFFFFFu

_CATEGORY_BITS = {
    "Lu": C_LU, "Lt": C_LU, "Ll": C_LL, "Lm": C_LO, "Lo": C_LO,
    "Mn": C_M, "Mc": C_M, "Me": C_M, "Nd": C_N, "Nl": C_N, "No": C_N,
}

# Unicode 16.0 assigns no letter, mark or number outside these ranges, so only they are
# read from unicodedata (keeps the first-use cost low).
_SCAN_RANGES = ((0x0, 0x32400), (0xE0000, 0xE0200))

_WHITE_SPACE = (
    0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680,
    0x2000, 0x2001, 0x2002, 0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A,
    0x2028, 0x2029, 0x202F, 0x205F, 0x3000,
)

# (first, last, class bits) in Unicode 16.0 for every code point whose class differs between
# Unicode 16.0 and the unicodedata of Python 3.11 (14.0), 3.15 (17.0) or a later 18.0.
# Generated once with the unicodedata2 backports 16.0.0/17.0.0/18.0.0 by comparing the
# class bits above for all code points. Python 3.12 (15.0) and 3.13 (15.1) fall between
# 14.0 and 16.0, so the same list corrects them; 3.14 ships 16.0 itself. Not covered: Python
# 3.10 (Unicode 13.0), where the 838 code points new in 14.0 stay "other" (no 13.0 data was
# available to diff against); texts using them may split differently from tiktoken there.
_UNICODE16_FIXES = (
    (0x295, 0x295, 2), (0x558, 0x558, 0), (0x58B, 0x58C, 0), (0x5C8, 0x5C9, 0),
    (0x88F, 0x88F, 0), (0x897, 0x897, 8), (0xB53, 0xB54, 0), (0xC5C, 0xC5C, 0),
    (0xCDC, 0xCDC, 0), (0xCF3, 0xCF3, 8), (0xECE, 0xECE, 8), (0x1ACF, 0x1AF0, 0),
    (0x1C89, 0x1C89, 1), (0x1C8A, 0x1C8A, 2), (0x208F, 0x208F, 0), (0x209D, 0x209F, 0),
    (0xA7CB, 0xA7CC, 1), (0xA7CD, 0xA7CD, 2), (0xA7CE, 0xA7CF, 0), (0xA7D2, 0xA7D2, 0),
    (0xA7D4, 0xA7D4, 0), (0xA7DA, 0xA7DA, 1), (0xA7DB, 0xA7DB, 2), (0xA7DC, 0xA7DC, 1),
    (0xA7DD, 0xA7DD, 0), (0xA7E2, 0xA7E2, 0), (0xA7F1, 0xA7F1, 0), (0xAB6C, 0xAB6D, 0),
    (0x105C0, 0x105F3, 4), (0x107BB, 0x107BF, 0), (0x10940, 0x10959, 0),
    (0x10D40, 0x10D49, 16), (0x10D4A, 0x10D4F, 4), (0x10D50, 0x10D65, 1),
    (0x10D69, 0x10D6D, 8), (0x10D6F, 0x10D6F, 4), (0x10D70, 0x10D85, 2), (0x10EC2, 0x10EC4, 4),
    (0x10EC5, 0x10EC7, 0), (0x10ECB, 0x10ECF, 0), (0x10ED9, 0x10EEE, 0), (0x10EF0, 0x10EFB, 0),
    (0x10EFC, 0x10EFF, 8), (0x1123F, 0x11240, 4), (0x11241, 0x11241, 8), (0x11380, 0x11389, 4),
    (0x1138B, 0x1138B, 4), (0x1138E, 0x1138E, 4), (0x11390, 0x113B5, 4), (0x113B7, 0x113B7, 4),
    (0x113B8, 0x113C0, 8), (0x113C2, 0x113C2, 8), (0x113C5, 0x113C5, 8), (0x113C7, 0x113CA, 8),
    (0x113CC, 0x113D0, 8), (0x113D1, 0x113D1, 4), (0x113D2, 0x113D2, 8), (0x113D3, 0x113D3, 4),
    (0x113E1, 0x113E2, 8), (0x116D0, 0x116E3, 16), (0x11B0A, 0x11B0A, 0),
    (0x11B60, 0x11B67, 0), (0x11BC0, 0x11BE0, 4), (0x11BF0, 0x11BF9, 16),
    (0x11DB0, 0x11DDB, 0), (0x11DE0, 0x11DE9, 0), (0x11DF0, 0x11DF1, 0), (0x11F00, 0x11F01, 8),
    (0x11F02, 0x11F02, 4), (0x11F03, 0x11F03, 8), (0x11F04, 0x11F10, 4), (0x11F12, 0x11F33, 4),
    (0x11F34, 0x11F3A, 8), (0x11F3E, 0x11F42, 8), (0x11F50, 0x11F59, 16),
    (0x11F5A, 0x11F5A, 8), (0x1246F, 0x1246F, 0), (0x12475, 0x1247F, 0), (0x12550, 0x12686, 0),
    (0x1342F, 0x1342F, 4), (0x13440, 0x13440, 8), (0x13441, 0x13446, 4), (0x13447, 0x13455, 8),
    (0x13460, 0x143FA, 4), (0x16100, 0x1611D, 4), (0x1611E, 0x1612F, 8),
    (0x16130, 0x16139, 16), (0x16D40, 0x16D6C, 4), (0x16D70, 0x16D79, 16),
    (0x16EA0, 0x16EB8, 0), (0x16EBB, 0x16ED3, 0), (0x16FF2, 0x16FF6, 0), (0x187F8, 0x187FF, 0),
    (0x18CD6, 0x18CDA, 0), (0x18CFF, 0x18CFF, 4), (0x18D09, 0x18D20, 0), (0x18D80, 0x18DF2, 0),
    (0x18E00, 0x19191, 0), (0x191A0, 0x191D2, 0), (0x1B123, 0x1B128, 0), (0x1B132, 0x1B132, 4),
    (0x1B155, 0x1B155, 4), (0x1B168, 0x1B168, 0), (0x1CCF0, 0x1CCF9, 16),
    (0x1D127, 0x1D128, 0), (0x1D250, 0x1D252, 0), (0x1D25B, 0x1D25C, 0), (0x1D25F, 0x1D25F, 0),
    (0x1D280, 0x1D281, 0), (0x1D2C0, 0x1D2D3, 16), (0x1D6A6, 0x1D6A6, 0),
    (0x1DF1F, 0x1DF24, 0), (0x1DF25, 0x1DF2A, 2), (0x1DF2B, 0x1DF81, 0), (0x1DF90, 0x1DF96, 0),
    (0x1DFCD, 0x1DFFF, 0), (0x1E030, 0x1E06D, 4), (0x1E08F, 0x1E08F, 8), (0x1E4D0, 0x1E4EB, 4),
    (0x1E4EC, 0x1E4EF, 8), (0x1E4F0, 0x1E4F9, 16), (0x1E5D0, 0x1E5ED, 4),
    (0x1E5EE, 0x1E5EF, 8), (0x1E5F0, 0x1E5F0, 4), (0x1E5F1, 0x1E5FA, 16),
    (0x1E6C0, 0x1E6DE, 0), (0x1E6E0, 0x1E6F5, 0), (0x1E6FE, 0x1E6FF, 0), (0x2B739, 0x2B739, 4),
    (0x2B73A, 0x2B73F, 0), (0x2B81E, 0x2B81E, 0), (0x2CEA2, 0x2CEAD, 0), (0x2EBF0, 0x2EE5D, 4),
    (0x31350, 0x323AF, 4), (0x323B0, 0x33479, 0), (0x3D000, 0x3FC3F, 0),
)

cdef uint16_t _stage1[0x1100]
cdef uint8_t* _stage2 = NULL


def _build_classes():
    """Fill the two-stage class table once; 256-code-point blocks are shared when equal."""
    global _stage2
    if _stage2 != NULL:
        return
    cdef bytearray flat = bytearray(0x110000)
    cdef uint8_t[::1] fv = flat
    cdef Py_ssize_t cp, b, nblocks
    category = unicodedata.category
    bits = _CATEGORY_BITS
    for lo, hi in _SCAN_RANGES:
        for cp in range(lo, hi):
            v = bits.get(category(chr(cp)))
            if v is not None:
                fv[cp] = v
    for lo, hi, v in _UNICODE16_FIXES:
        for cp in range(lo, hi + 1):
            fv[cp] = v
    for cp in _WHITE_SPACE:
        fv[cp] = C_WS
    index = {}
    blocks = []
    for b in range(0x1100):
        blk = bytes(flat[b * 256:(b + 1) * 256])
        k = index.get(blk)
        if k is None:
            k = len(blocks)
            index[blk] = k
            blocks.append(blk)
        _stage1[b] = <uint16_t>k
    nblocks = len(blocks)
    cdef uint8_t* table = <uint8_t*>malloc(nblocks * 256)
    if table == NULL:
        raise MemoryError()
    for b in range(nblocks):
        memcpy(table + b * 256, PyBytes_AS_STRING(blocks[b]), 256)
    _stage2 = table


cdef inline uint8_t _cls(uint32_t cp) noexcept nogil:
    return _stage2[(<uint32_t>_stage1[cp >> 8] << 8) | (cp & 0xFF)]


cdef inline uint32_t _dec(const uint8_t* s, Py_ssize_t i, int* ln) noexcept nogil:
    """Decode the code point at byte ``i``; input is valid UTF-8 (it comes from a str)."""
    cdef uint32_t c = s[i]
    if c < 0x80:
        ln[0] = 1
        return c
    if c < 0xE0:
        ln[0] = 2
        return ((c & 0x1F) << 6) | (s[i + 1] & 0x3F)
    if c < 0xF0:
        ln[0] = 3
        return ((c & 0x0F) << 12) | ((s[i + 1] & 0x3F) << 6) | (s[i + 2] & 0x3F)
    ln[0] = 4
    return (((c & 0x07) << 18) | ((s[i + 1] & 0x3F) << 12) | ((s[i + 2] & 0x3F) << 6)
            | (s[i + 3] & 0x3F))


cdef inline Py_ssize_t _contraction(const uint8_t* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """Byte length of ``(?i:'s|'t|'re|'ve|'m|'ll|'d)`` at ``i`` (0 if none).

    Case-insensitive in the regex crate means Unicode simple case folding, under which
    U+017F LATIN SMALL LETTER LONG S matches ``s`` too.
    """
    cdef uint8_t a, b
    if s[i] != 39 or i + 1 >= n:
        return 0
    a = s[i + 1] | 0x20
    if a == 115 or a == 116 or a == 109 or a == 100:   # s t m d
        return 2
    if i + 2 >= n:
        return 0
    if s[i + 1] == 0xC5 and s[i + 2] == 0xBF:           # U+017F
        return 3
    b = s[i + 2] | 0x20
    if (a == 108 and b == 108) or (b == 101 and (a == 118 or a == 114)):   # ll ve re
        return 3
    return 0


cdef inline Py_ssize_t _ws_tail(const uint8_t* s, Py_ssize_t i, Py_ssize_t n, bint o200k) noexcept nogil:
    """The whitespace alternatives, entered with a \\s char at ``i``.

    cl100k: ``\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s``; o200k: ``\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+``.
    With the maximal run i..j, backtracking makes ``\\s*[\\r\\n]`` end just after the last
    CR/LF of the run, and ``\\s+(?!\\S)`` stop before the run's last char unless it ends the
    text.
    """
    cdef Py_ssize_t j = i, last_nl = -1, prev = i
    cdef uint32_t c
    cdef int ln
    while j < n:
        c = _dec(s, j, &ln)
        if not (_cls(c) & C_WS):
            break
        if c == 10 or c == 13:
            last_nl = j + 1
        prev = j
        j += ln
    if j == n and not o200k:
        return n
    if last_nl >= 0:
        return last_nl
    if j == n:
        return n
    if prev > i:
        return prev
    return j


cdef inline Py_ssize_t _punct_tail(const uint8_t* s, Py_ssize_t j, Py_ssize_t n, bint o200k) noexcept nogil:
    """``[^\\s\\p{L}\\p{N}]+`` from ``j`` (known to match), then ``[\\r\\n]*`` (o200k: ``[\\r\\n/]*``)."""
    cdef uint32_t c
    cdef int ln
    while j < n:
        c = _dec(s, j, &ln)
        if _cls(c) & C_LNWS:
            break
        j += ln
    while j < n and (s[j] == 10 or s[j] == 13 or (o200k and s[j] == 47)):
        j += 1
    return j


cdef Py_ssize_t _next_cl100k(const uint8_t* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """End of the cl100k_base piece starting at ``i``. The pattern is

    ``'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+|``
    `` ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s``
    """
    cdef int ln, ln2
    cdef uint32_t c = _dec(s, i, &ln), c2
    cdef uint8_t k = _cls(c), k2
    cdef Py_ssize_t j, m
    if c == 39:
        m = _contraction(s, i, n)
        if m:
            return i + m
    j = i + ln
    if k & C_L:
        pass
    elif not (k & C_N) and c != 10 and c != 13 and j < n and (_cls(_dec(s, j, &ln2)) & C_L):
        j += ln2                       # one prefix char, then letters
    elif k & C_N:
        m = 1
        while m < 3 and j < n:
            c2 = _dec(s, j, &ln2)
            if not (_cls(c2) & C_N):
                break
            j += ln2
            m += 1
        return j
    else:
        if c == 32 and j < n:
            c2 = _dec(s, j, &ln2)
            if not (_cls(c2) & C_LNWS):
                return _punct_tail(s, j, n, False)
        if not (k & C_LNWS):
            return _punct_tail(s, i, n, False)
        return _ws_tail(s, i, n, False)
    while j < n:                       # \p{L}++
        c2 = _dec(s, j, &ln2)
        if not (_cls(c2) & C_L):
            break
        j += ln2
    return j


cdef inline Py_ssize_t _o200k_lower_first(const uint8_t* s, Py_ssize_t j, Py_ssize_t n) noexcept nogil:
    """``[U]*[W]+`` from ``j`` (U = Lu Lt Lm Lo M, W = Ll Lm Lo M); -1 if no match.

    U* is greedy, so the match ends after the W-run that follows the U-run, or, if the
    U-run is not followed by a lower-case letter, right after the last W char inside it.
    """
    cdef Py_ssize_t last_w = -1
    cdef uint32_t c
    cdef uint8_t k
    cdef int ln
    while j < n:
        c = _dec(s, j, &ln)
        k = _cls(c)
        if not (k & C_U):
            if k & C_LL:
                j += ln
                while j < n:
                    c = _dec(s, j, &ln)
                    if not (_cls(c) & C_W):
                        break
                    j += ln
                return j
            return last_w
        j += ln
        if k & C_W:
            last_w = j
    return last_w


cdef inline Py_ssize_t _o200k_upper_first(const uint8_t* s, Py_ssize_t j, Py_ssize_t n) noexcept nogil:
    """``[U]+[W]*`` from ``j``; -1 if no match."""
    cdef Py_ssize_t start = j
    cdef uint32_t c
    cdef int ln
    while j < n:
        c = _dec(s, j, &ln)
        if not (_cls(c) & C_U):
            break
        j += ln
    if j == start:
        return -1
    while j < n:
        c = _dec(s, j, &ln)
        if not (_cls(c) & C_W):
            break
        j += ln
    return j


cdef Py_ssize_t _next_o200k(const uint8_t* s, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    """End of the o200k_base piece starting at ``i``. The pattern's alternatives are

    1. ``[^\\r\\n\\p{L}\\p{N}]?[U]*[W]+C?``   2. ``[^\\r\\n\\p{L}\\p{N}]?[U]+[W]*C?``
    3. ``\\p{N}{1,3}``   4. `` ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*``   5. ``\\s*[\\r\\n]+``
    6. ``\\s+(?!\\S)``   7. ``\\s+``   with C = ``(?i:'s|'t|'re|'ve|'m|'ll|'d)``.
    Each of 1 and 2 first tries with the optional prefix char taken, then without it.
    """
    cdef int ln, ln2
    cdef uint32_t c = _dec(s, i, &ln), c2
    cdef uint8_t k = _cls(c)
    cdef bint prefix = not (k & C_LN) and c != 10 and c != 13
    cdef bint lettery = (k & (C_L | C_M)) != 0
    cdef Py_ssize_t j = -1, m
    if prefix and i + ln < n:
        j = _o200k_lower_first(s, i + ln, n)
    if j < 0 and lettery:
        j = _o200k_lower_first(s, i, n)
    if j < 0 and prefix and i + ln < n:
        j = _o200k_upper_first(s, i + ln, n)
    if j < 0 and lettery:
        j = _o200k_upper_first(s, i, n)
    if j >= 0:
        if j < n and s[j] == 39:
            j += _contraction(s, j, n)
        return j
    j = i + ln
    if k & C_N:
        m = 1
        while m < 3 and j < n:
            c2 = _dec(s, j, &ln2)
            if not (_cls(c2) & C_N):
                break
            j += ln2
            m += 1
        return j
    if c == 32 and j < n:
        c2 = _dec(s, j, &ln2)
        if not (_cls(c2) & C_LNWS):
            return _punct_tail(s, j, n, True)
    if not (k & C_LNWS):
        return _punct_tail(s, i, n, True)
    return _ws_tail(s, i, n, True)


# --------------------------------------------------------------------------------------------
# Rank table and byte-pair merge
# --------------------------------------------------------------------------------------------

cdef struct RankTable:
    uint8_t* arena         # token bytes, concatenated in rank order
    uint32_t* off          # n_ranks + 1 offsets into arena
    uint32_t n_ranks
    uint64_t* slots        # open addressing: (hash >> 32) << 32 | (rank + 1); 0 = empty
    uint64_t mask
    uint32_t* pair         # 65536 entries: rank of each 2-byte token, NO_RANK if none
    uint32_t byte_rank[256]


cdef inline uint64_t _rd64(const uint8_t* p) noexcept nogil:
    cdef uint64_t v
    memcpy(&v, p, 8)
    return v


cdef inline uint64_t _rd32(const uint8_t* p) noexcept nogil:
    cdef uint32_t v
    memcpy(&v, p, 4)
    return v


cdef inline uint64_t _mix(uint64_t x) noexcept nogil:
    x *= 0xbf58476d1ce4e5b9ULL
    return x ^ (x >> 29)


cdef inline uint64_t _hash(const uint8_t* p, Py_ssize_t n) noexcept nogil:
    """Fixed-width loads instead of a byte loop: pieces are short, so this is most of the cost."""
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ (<uint64_t>n * 0xff51afd7ed558ccdULL)
    cdef uint64_t a
    cdef Py_ssize_t i = 0
    if n <= 8:
        if n >= 4:
            a = (_rd32(p) << 32) | _rd32(p + n - 4)
        elif n > 0:
            a = (<uint64_t>p[0] << 16) | (<uint64_t>p[n >> 1] << 8) | p[n - 1]
        else:
            a = 0
        h = _mix(h ^ a)
    else:
        while n - i > 8:
            h = _mix(h ^ _rd64(p + i))
            i += 8
        h = _mix(h ^ _rd64(p + n - 8))
    h ^= h >> 32
    h *= 0xd6e8feb86659fd93ULL
    return h ^ (h >> 32)


cdef inline uint32_t _rank(const RankTable* t, const uint8_t* p, Py_ssize_t n) noexcept nogil:
    cdef uint64_t h = _hash(p, n)
    cdef uint64_t idx = h & t.mask
    cdef uint64_t tag = h >> 32
    cdef uint64_t e
    cdef uint32_t r
    while True:
        e = t.slots[idx]
        if e == 0:
            return NO_RANK
        if (e >> 32) == tag:
            r = <uint32_t>e - 1
            if t.off[r + 1] - t.off[r] == n and memcmp(t.arena + t.off[r], p, n) == 0:
                return r
        idx = (idx + 1) & t.mask


cdef enum:
    SMALL_PIECE = 128      # above this many bytes the merge switches to a heap


cdef Py_ssize_t _merge_small(const RankTable* t, const uint8_t* p, Py_ssize_t L,
                             uint32_t* out, uint32_t* ws) noexcept nogil:
    """tiktoken's reference merge: repeatedly join the leftmost lowest-rank adjacent pair.

    Quadratic, but with L <= SMALL_PIECE a linear scan of a few dozen ints beats a heap.
    ``ws`` holds 3 * (L + 1) ints.
    """
    cdef uint32_t* pos = ws
    cdef uint32_t* rk = ws + (L + 1)
    cdef uint32_t* tk = ws + 2 * (L + 1)
    cdef Py_ssize_t m = L, i, bi
    cdef uint32_t best
    for i in range(L):
        pos[i] = <uint32_t>i
        tk[i] = t.byte_rank[p[i]]
    pos[L] = <uint32_t>L
    for i in range(L - 1):
        rk[i] = t.pair[(<uint32_t>p[i] << 8) | p[i + 1]]
    rk[L - 1] = NO_RANK
    while m > 1:
        best = NO_RANK
        bi = 0
        for i in range(m - 1):
            if rk[i] < best:
                best = rk[i]
                bi = i
        if best == NO_RANK:
            break
        tk[bi] = best
        memmove(pos + bi + 1, pos + bi + 2, (m - bi - 1) * sizeof(uint32_t))
        memmove(rk + bi + 1, rk + bi + 2, (m - bi - 2) * sizeof(uint32_t))
        memmove(tk + bi + 1, tk + bi + 2, (m - bi - 2) * sizeof(uint32_t))
        m -= 1
        if bi + 1 < m:
            rk[bi] = _rank(t, p + pos[bi], pos[bi + 2] - pos[bi])
        else:
            rk[bi] = NO_RANK
        if bi > 0:
            rk[bi - 1] = _rank(t, p + pos[bi - 1], pos[bi + 1] - pos[bi - 1])
    if out != NULL:
        memcpy(out, tk, m * sizeof(uint32_t))
    return m


cdef inline void _heap_push(uint64_t* h, Py_ssize_t* n, uint64_t v) noexcept nogil:
    cdef Py_ssize_t i = n[0], parent
    n[0] = i + 1
    while i > 0:
        parent = (i - 1) >> 1
        if h[parent] <= v:
            break
        h[i] = h[parent]
        i = parent
    h[i] = v


cdef inline uint64_t _heap_pop(uint64_t* h, Py_ssize_t* n) noexcept nogil:
    cdef uint64_t top = h[0], v
    cdef Py_ssize_t size = n[0] - 1, i = 0, c
    n[0] = size
    if size == 0:
        return top
    v = h[size]
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and h[c + 1] < h[c]:
            c += 1
        if h[c] >= v:
            break
        h[i] = h[c]
        i = c
    h[i] = v
    return top


cdef Py_ssize_t _merge_large(const RankTable* t, const uint8_t* p, Py_ssize_t L,
                             uint32_t* out) noexcept nogil:
    """Same merge order as ``_merge_small`` in O(L log L), for long pieces (e.g. runs of a
    repeated char, base64 blobs) where the quadratic scan would dominate. Heap keys are
    (rank << 32 | start), so ties go to the leftmost pair exactly as in the reference.
    Returns -1 when out of memory.
    """
    cdef uint32_t* nxt = <uint32_t*>malloc((L + 1) * sizeof(uint32_t))
    cdef uint32_t* prv = <uint32_t*>malloc((L + 1) * sizeof(uint32_t))
    cdef uint32_t* tk = <uint32_t*>malloc((L + 1) * sizeof(uint32_t))
    cdef uint32_t* pr = <uint32_t*>malloc((L + 1) * sizeof(uint32_t))
    cdef uint8_t* dead = <uint8_t*>calloc(L + 1, 1)
    cdef uint64_t* heap = <uint64_t*>malloc(3 * (L + 1) * sizeof(uint64_t))
    cdef Py_ssize_t hn = 0, i, count = 0
    cdef uint64_t top
    cdef uint32_t r, a, b, e
    if nxt == NULL or prv == NULL or tk == NULL or pr == NULL or dead == NULL or heap == NULL:
        free(nxt); free(prv); free(tk); free(pr); free(dead); free(heap)
        return -1
    for i in range(L):
        nxt[i] = <uint32_t>(i + 1)
        prv[i] = <uint32_t>(i - 1) if i > 0 else NO_RANK
        tk[i] = t.byte_rank[p[i]]
        if i + 1 < L:
            pr[i] = t.pair[(<uint32_t>p[i] << 8) | p[i + 1]]
            if pr[i] != NO_RANK:
                _heap_push(heap, &hn, (<uint64_t>pr[i] << 32) | <uint64_t>i)
        else:
            pr[i] = NO_RANK
    while hn > 0:
        top = _heap_pop(heap, &hn)
        r = <uint32_t>(top >> 32)
        a = <uint32_t>(top & 0xFFFFFFFFu)
        if dead[a] or pr[a] != r:
            continue                               # stale entry
        b = nxt[a]
        tk[a] = r
        dead[b] = 1
        nxt[a] = nxt[b]
        if nxt[b] < L:
            prv[nxt[b]] = a
        if nxt[a] < L:
            e = nxt[nxt[a]]
            pr[a] = _rank(t, p + a, e - a)
            if pr[a] != NO_RANK:
                _heap_push(heap, &hn, (<uint64_t>pr[a] << 32) | a)
        else:
            pr[a] = NO_RANK
        if prv[a] != NO_RANK:
            b = prv[a]
            pr[b] = _rank(t, p + b, nxt[a] - b)
            if pr[b] != NO_RANK:
                _heap_push(heap, &hn, (<uint64_t>pr[b] << 32) | b)
    i = 0
    while i < L:
        if out != NULL:
            out[count] = tk[i]
        count += 1
        i = nxt[i]
    free(nxt); free(prv); free(tk); free(pr); free(dead); free(heap)
    return count


cdef inline Py_ssize_t _encode_piece(const RankTable* t, const uint8_t* p, Py_ssize_t L,
                                     uint32_t* out, uint32_t* ws) noexcept nogil:
    """Tokens of one piece written to ``out`` (if not NULL); returns their number or -1."""
    cdef uint32_t r
    if L == 1:
        if out != NULL:
            out[0] = t.byte_rank[p[0]]
        return 1
    if L == 2:
        r = t.pair[(<uint32_t>p[0] << 8) | p[1]]
        if r != NO_RANK:
            if out != NULL:
                out[0] = r
            return 1
        if out != NULL:
            out[0] = t.byte_rank[p[0]]
            out[1] = t.byte_rank[p[1]]
        return 2
    r = _rank(t, p, L)
    if r != NO_RANK:
        if out != NULL:
            out[0] = r
        return 1
    if L <= SMALL_PIECE:
        return _merge_small(t, p, L, out, ws)
    return _merge_large(t, p, L, out)


cdef struct TokBuf:
    uint32_t* data
    Py_ssize_t len
    Py_ssize_t cap


cdef Py_ssize_t _encode_span(const RankTable* t, bint o200k, const uint8_t* s, Py_ssize_t n,
                             TokBuf* out) noexcept nogil:
    """Pre-tokenise and merge ``s[:n]``; appends to ``out`` or, if NULL, only counts.

    Returns the number of tokens, or -1 when out of memory.
    """
    cdef uint32_t ws[3 * (SMALL_PIECE + 1)]
    cdef Py_ssize_t i = 0, j, k, total = 0, cap
    cdef uint32_t* grown
    while i < n:
        if o200k:
            j = _next_o200k(s, i, n)
        else:
            j = _next_cl100k(s, i, n)
        if out != NULL:
            if out.len + (j - i) > out.cap:
                cap = out.cap * 2
                if cap < out.len + (j - i):
                    cap = out.len + (j - i)
                grown = <uint32_t*>realloc(out.data, cap * sizeof(uint32_t))
                if grown == NULL:
                    return -1
                out.data = grown
                out.cap = cap
            k = _encode_piece(t, s + i, j - i, out.data + out.len, ws)
            if k < 0:
                return -1
            out.len += k
        else:
            k = _encode_piece(t, s + i, j - i, NULL, ws)
            if k < 0:
                return -1
        total += k
        i = j
    return total


cdef enum:
    NOGIL_MIN_BYTES = 16384    # below this, dropping and retaking the GIL costs more than it frees


cdef inline const uint8_t* _utf8(object text, Py_ssize_t* n) except NULL:
    return <const uint8_t*>PyUnicode_AsUTF8AndSize(text, n)


cdef object _fix_surrogates(str text):
    """What tiktoken does before encoding a str UTF-8 refuses: surrogate pairs are joined,
    lone surrogates become U+FFFD."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


# --------------------------------------------------------------------------------------------
# Encoding specs
# --------------------------------------------------------------------------------------------

_SPECS = {
    "cl100k_base": {
        "sha256": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        "o200k": False,
        "special": {
            "<|endoftext|>": 100257, "<|fim_prefix|>": 100258, "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260, "<|endofprompt|>": 100276,
        },
        # For reference and tests: what _next_cl100k implements.
        "pattern": (r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+|"""
                    r""" ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""),
    },
    "o200k_base": {
        "sha256": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        "o200k": True,
        "special": {"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
        "pattern": "|".join([
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""\p{N}{1,3}""",
            r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]),
    },
}

ENCODING_NAMES = tuple(_SPECS)


def encoding_spec(str name):
    """Split pattern and special tokens of an encoding (what a reference implementation needs)."""
    spec = _SPECS[name]
    return {"pattern": spec["pattern"], "special_tokens": dict(spec["special"])}


def data_path(str name):
    """Where the shipped rank file of ``name`` lives (package data, never downloaded)."""
    here = os.path.dirname(os.path.abspath(__file__))
    return os.path.join(os.path.dirname(here), "data", "tokenizers", name + ".tiktoken.gz")


cdef int _b64val[256]
for _i in range(256):
    _b64val[_i] = -1
for _i, _ch in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"):
    _b64val[ord(_ch)] = _i


cdef class Encoding:
    """A loaded encoding. Immutable after construction, so encode/count may run without the
    GIL and from several threads at once."""

    cdef RankTable t
    cdef bint o200k
    cdef readonly str name
    cdef dict _special           # str -> id
    cdef dict _special_bytes     # id -> bytes
    cdef object _special_re

    def __cinit__(self):
        memset(&self.t, 0, sizeof(RankTable))

    def __dealloc__(self):
        free(self.t.arena)
        free(self.t.off)
        free(self.t.slots)
        free(self.t.pair)

    def __init__(self, str name, bytes ranks, dict special_tokens, bint o200k):
        """``ranks`` is the uncompressed ``.tiktoken`` file: ``base64 SP rank`` lines."""
        if self.t.arena != NULL:
            raise RuntimeError("Encoding is immutable once loaded")
        _build_classes()
        self.name = name
        self.o200k = o200k
        self._special = dict(special_tokens)
        self._special_bytes = {v: k.encode("utf-8") for k, v in special_tokens.items()}
        self._special_re = re.compile("|".join(re.escape(k) for k in sorted(special_tokens, key=len, reverse=True)))
        self._load(ranks)

    cdef _load(self, bytes ranks):
        cdef const uint8_t* d = <const uint8_t*>PyBytes_AS_STRING(ranks)
        cdef Py_ssize_t n = PyBytes_GET_SIZE(ranks), i = 0, j, nlines = 0, total_b64 = 0
        cdef Py_ssize_t maxrank = -1, cap, r, line_start
        cdef uint32_t acc, bits, rank
        cdef int v
        cdef uint32_t* tmp_rank
        cdef uint32_t* tmp_off
        cdef uint32_t* tmp_len
        cdef uint32_t* by_rank
        cdef uint8_t* bytes_buf
        cdef Py_ssize_t blen = 0
        cdef uint64_t h, idx
        cdef RankTable* t = &self.t
        # Pass 1: count lines so the arrays can be sized once.
        for i in range(n):
            if d[i] == 10:
                nlines += 1
        if n and d[n - 1] != 10:
            nlines += 1
        tmp_rank = <uint32_t*>malloc((nlines + 1) * sizeof(uint32_t))
        tmp_off = <uint32_t*>malloc((nlines + 1) * sizeof(uint32_t))
        tmp_len = <uint32_t*>malloc((nlines + 1) * sizeof(uint32_t))
        bytes_buf = <uint8_t*>malloc(n + 1)          # decoded bytes are shorter than the text
        if tmp_rank == NULL or tmp_off == NULL or tmp_len == NULL or bytes_buf == NULL:
            free(tmp_rank); free(tmp_off); free(tmp_len); free(bytes_buf)
            raise MemoryError()
        try:
            # Pass 2: decode base64 and parse ranks.
            nlines = 0
            i = 0
            while i < n:
                line_start = i
                tmp_off[nlines] = <uint32_t>blen
                acc = 0
                bits = 0
                while i < n and d[i] != 32 and d[i] != 10:
                    if d[i] != 61:               # '=' padding
                        v = _b64val[d[i]]
                        if v < 0:
                            raise ValueError("bad base64 in rank file")
                        acc = (acc << 6) | <uint32_t>v
                        bits += 6
                        if bits >= 8:
                            bits -= 8
                            bytes_buf[blen] = <uint8_t>((acc >> bits) & 0xFF)
                            blen += 1
                    i += 1
                if i == line_start:              # blank line
                    i += 1
                    continue
                if i >= n or d[i] != 32:
                    raise ValueError("bad line in rank file")
                i += 1
                r = 0
                j = i
                while i < n and 48 <= d[i] <= 57:
                    r = r * 10 + (d[i] - 48)
                    i += 1
                if i == j or r >= 0xFFFFFFF0:
                    raise ValueError("bad rank in rank file")
                while i < n and d[i] != 10:
                    i += 1
                i += 1
                tmp_len[nlines] = <uint32_t>(blen - tmp_off[nlines])
                tmp_rank[nlines] = <uint32_t>r
                if r > maxrank:
                    maxrank = r
                nlines += 1
            # Arrays indexed by rank.
            t.n_ranks = <uint32_t>(maxrank + 1)
            t.arena = <uint8_t*>malloc(blen + 1)
            t.off = <uint32_t*>calloc(t.n_ranks + 1, sizeof(uint32_t))
            t.pair = <uint32_t*>malloc(65536 * sizeof(uint32_t))
            cap = 1024
            while cap < 2 * nlines:
                cap *= 2
            t.slots = <uint64_t*>calloc(cap, sizeof(uint64_t))
            t.mask = cap - 1
            if t.arena == NULL or t.off == NULL or t.pair == NULL or t.slots == NULL:
                raise MemoryError()
            # Lay tokens out in rank order so off[r]..off[r + 1] is token r; missing ranks
            # get an empty span and are never inserted. by_rank holds (length, source
            # offset) pairs indexed by rank.
            by_rank = <uint32_t*>calloc(2 * (t.n_ranks + 1), sizeof(uint32_t))
            if by_rank == NULL:
                raise MemoryError()
            try:
                for i in range(nlines):
                    r = tmp_rank[i]
                    if by_rank[2 * r]:
                        raise ValueError("duplicate rank in rank file")
                    by_rank[2 * r] = tmp_len[i]
                    by_rank[2 * r + 1] = tmp_off[i]
                j = 0
                for r in range(t.n_ranks):
                    t.off[r] = <uint32_t>j
                    memcpy(t.arena + j, bytes_buf + <Py_ssize_t>by_rank[2 * r + 1], <Py_ssize_t>by_rank[2 * r])
                    j += <Py_ssize_t>by_rank[2 * r]
            finally:
                free(by_rank)
            t.off[t.n_ranks] = <uint32_t>j
            for i in range(65536):
                t.pair[i] = NO_RANK
            for i in range(256):
                t.byte_rank[i] = NO_RANK
            for r in range(t.n_ranks):
                j = t.off[r + 1] - t.off[r]
                if j == 0:
                    continue
                if _rank(t, t.arena + t.off[r], j) != NO_RANK:
                    raise ValueError("duplicate token in rank file")
                h = _hash(t.arena + t.off[r], j)
                idx = h & t.mask
                while t.slots[idx] != 0:
                    idx = (idx + 1) & t.mask
                t.slots[idx] = ((h >> 32) << 32) | <uint64_t>(r + 1)
                if j == 1:
                    t.byte_rank[t.arena[t.off[r]]] = <uint32_t>r
                elif j == 2:
                    t.pair[(<uint32_t>t.arena[t.off[r]] << 8) | t.arena[t.off[r] + 1]] = <uint32_t>r
            for i in range(256):
                if t.byte_rank[i] == NO_RANK:
                    raise ValueError("rank file lacks single byte %d" % i)
        finally:
            free(tmp_rank); free(tmp_off); free(tmp_len); free(bytes_buf)

    @property
    def n_vocab(self):
        """Largest token id + 1, specials included."""
        return max(<Py_ssize_t>self.t.n_ranks, max(self._special.values()) + 1)

    @property
    def special_tokens(self):
        return dict(self._special)

    cdef Py_ssize_t _run(self, str text, TokBuf* out) except -2:
        cdef Py_ssize_t n, k
        cdef const uint8_t* s
        try:
            s = _utf8(text, &n)
        except UnicodeEncodeError:
            text = _fix_surrogates(text)
            s = _utf8(text, &n)
        if n >= NOGIL_MIN_BYTES:
            with nogil:
                k = _encode_span(&self.t, self.o200k, s, n, out)
        else:
            k = _encode_span(&self.t, self.o200k, s, n, out)
        if k < 0:
            raise MemoryError()
        return k

    def encode(self, str text, bint allow_special=False):
        """Token ids of ``text``. By default special-token text is ordinary text (tiktoken's
        ``encode_ordinary``); with ``allow_special`` it becomes the special ids
        (``encode(..., allowed_special="all")``)."""
        cdef TokBuf buf
        cdef Py_ssize_t i
        cdef list result
        buf.len = 0
        buf.cap = len(text) // 3 + 16
        buf.data = <uint32_t*>malloc(buf.cap * sizeof(uint32_t))
        if buf.data == NULL:
            raise MemoryError()
        try:
            if allow_special and "<|" in text:
                last = 0
                for m in self._special_re.finditer(text):
                    if m.start() > last:
                        self._run(text[last:m.start()], &buf)
                    self._push(&buf, self._special[m.group()])
                    last = m.end()
                if last < len(text):
                    self._run(text[last:], &buf)
            else:
                self._run(text, &buf)
            result = PyList_New(buf.len)
            for i in range(buf.len):
                o = PyLong_FromUnsignedLong(buf.data[i])
                Py_INCREF(o)
                PyList_SET_ITEM(result, i, o)
            return result
        finally:
            free(buf.data)

    cdef int _push(self, TokBuf* buf, uint32_t tok) except -1:
        cdef uint32_t* grown
        if buf.len == buf.cap:
            grown = <uint32_t*>realloc(buf.data, (buf.cap * 2 + 1) * sizeof(uint32_t))
            if grown == NULL:
                raise MemoryError()
            buf.data = grown
            buf.cap = buf.cap * 2 + 1
        buf.data[buf.len] = tok
        buf.len += 1
        return 0

    def count(self, str text, bint allow_special=False):
        """``len(self.encode(text, allow_special))`` without building the list."""
        cdef Py_ssize_t total = 0
        if allow_special and "<|" in text:
            last = 0
            for m in self._special_re.finditer(text):
                if m.start() > last:
                    total += self._run(text[last:m.start()], NULL)
                total += 1
                last = m.end()
            if last < len(text):
                total += self._run(text[last:], NULL)
            return total
        return self._run(text, NULL)

    def decode(self, tokens):
        """Bytes of a token sequence (may end mid-character; decode with errors= as needed)."""
        cdef bytearray out = bytearray()
        cdef Py_ssize_t tok
        for tok in tokens:
            if 0 <= tok < self.t.n_ranks and self.t.off[tok + 1] > self.t.off[tok]:
                out += PyBytes_FromStringAndSize(<const char*>self.t.arena + self.t.off[tok],
                                                 self.t.off[tok + 1] - self.t.off[tok])
            else:
                special = self._special_bytes.get(tok)
                if special is None:
                    raise KeyError("unknown token id %d" % tok)
                out += special
        return bytes(out)

    def split(self, str text):
        """The pre-tokeniser's pieces (no specials). For tests and debugging."""
        cdef Py_ssize_t n, i = 0, j
        cdef const uint8_t* s
        try:
            s = _utf8(text, &n)
        except UnicodeEncodeError:
            text = _fix_surrogates(text)
            s = _utf8(text, &n)
        pieces = []
        while i < n:
            j = _next_o200k(s, i, n) if self.o200k else _next_cl100k(s, i, n)
            pieces.append((<const char*>s)[i:j].decode("utf-8"))
            i = j
        return pieces

    def __repr__(self):
        return "<Encoding %r>" % self.name


def load_encoding(str name):
    """Read, verify and index the shipped rank file of ``name``; tens of ms, so callers cache."""
    spec = _SPECS.get(name)
    if spec is None:
        raise ValueError("unknown encoding %r (known: %s)" % (name, ", ".join(_SPECS)))
    with open(data_path(name), "rb") as f:
        raw = gzip.decompress(f.read())
    if hashlib.sha256(raw).hexdigest() != spec["sha256"]:
        raise ValueError("rank file for %s does not match its published sha256" % name)
    return Encoding(name, raw, spec["special"], spec["o200k"])
