"""Usage rows in the form SQLite binds without adaptation (fastgw/_core/usagerows.pyx)."""
from __future__ import annotations

import math

import pytest

from fastgw._core.usagerows import BOOL, KEEP, REAL, TEXT, bindable

KINDS = bytes([KEEP, TEXT, TEXT, REAL, REAL, BOOL, BOOL])


def test_none_text_becomes_zero_none_real_nan_bool_an_int():
    (row,) = bindable([(7, None, "", None, 0.0, True, False)], KINDS)
    assert row[0] == 7 and row[1] == 0 and type(row[1]) is int
    assert row[2] == "" and math.isnan(row[3]) and row[4] == 0.0
    assert row[5:] == (1, 0) and all(type(v) is int for v in row[5:])


def test_values_that_need_no_change_are_the_same_objects():
    text, real = "team-1", 0.25
    (row,) = bindable([(None, text, "0", real, 1.5, 1, 0)], KINDS)
    assert row[0] is None  # KEEP: left to sqlite3 as it is
    assert row[1] is text and row[2] == "0" and row[3] is real


def test_every_row_of_the_chunk_in_order():
    rows = [(i, None, f"t{i}", None, float(i), i % 2 == 0, False) for i in range(9)]
    out = bindable(rows, KINDS)
    assert [r[0] for r in out] == list(range(9)) and [r[2] for r in out] == [f"t{i}" for i in range(9)]


def test_a_row_that_does_not_fit_the_columns_is_refused():
    with pytest.raises(ValueError, match="6 values for 7 columns"):
        bindable([(1, None, "", None, 0.0, True)], KINDS)


def test_a_row_that_is_not_a_tuple_is_refused():
    with pytest.raises(TypeError):
        bindable([[1, None, "", None, 0.0, True, False]], KINDS)
