"""Durations and budget windows: fixed windows aligned to UTC, months by the calendar."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest

from fastgw.durations import (DurationError, add_duration, parse_duration, window_end, window_start)


def ts(*args: int) -> float:
    return datetime(*args, tzinfo=timezone.utc).timestamp()


def test_parse():
    assert str(parse_duration("30s")) == "30s" and parse_duration("30s").seconds == 30
    assert parse_duration("1h").seconds == 3600 and parse_duration("7d").seconds == 7 * 86400
    assert parse_duration("2w").seconds == 14 * 86400 and parse_duration("1mo").months == 1
    for bad in ("", "1", "d", "0d", "-1d", "1y", "1.5h", "1 mon", None):
        with pytest.raises(DurationError):
            parse_duration(bad)  # type: ignore[arg-type]


def test_fixed_windows_align_to_utc():
    now = ts(2026, 3, 18, 15, 42, 7)  # a Wednesday
    assert window_start(parse_duration("1h"), now) == ts(2026, 3, 18, 15)
    assert window_start(parse_duration("1d"), now) == ts(2026, 3, 18)
    assert window_end(parse_duration("1d"), now) == ts(2026, 3, 19)
    assert window_start(parse_duration("7d"), now) == ts(2026, 3, 16), "weeks start on Monday"
    assert window_start(parse_duration("2s"), now) % 2 == 0
    assert window_start(None, now) == 0.0 and window_end(None, now) is None


def test_calendar_months():
    one = parse_duration("1mo")
    assert window_start(one, ts(2026, 1, 31, 23, 59)) == ts(2026, 1, 1)
    assert window_end(one, ts(2026, 1, 31, 23, 59)) == ts(2026, 2, 1)
    assert window_start(one, ts(2026, 2, 1)) == ts(2026, 2, 1), "resets on the 1st at midnight"
    assert window_end(one, ts(2026, 12, 5)) == ts(2027, 1, 1)
    quarter = parse_duration("3mo")
    assert window_start(quarter, ts(2026, 5, 20)) == ts(2026, 4, 1)
    assert window_end(quarter, ts(2026, 5, 20)) == ts(2026, 7, 1)


def test_add_duration_clamps_to_month_end():
    assert add_duration(ts(2026, 1, 31, 10), parse_duration("1mo")) == ts(2026, 2, 28, 10)
    assert add_duration(ts(2028, 1, 31), parse_duration("1mo")) == ts(2028, 2, 29)
    assert add_duration(ts(2026, 11, 15), parse_duration("2mo")) == ts(2027, 1, 15)
    assert add_duration(100.0, parse_duration("1h")) == 3700.0
