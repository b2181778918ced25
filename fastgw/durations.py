"""Durations ("30s", "1h", "7d", "1mo") and the budget windows they define.

Windows are aligned to fixed instants, not to when a key was created, so every worker
and every restart agrees on when a window starts without storing any state:
fixed-length windows count from Monday 1970-01-05 00:00 UTC ("1h" resets on the hour,
"1d" at midnight UTC, "7d" on Mondays); month windows ("1mo", "3mo") are calendar months
counted from January 1970 ("1mo" resets on the 1st at 00:00 UTC).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

_PATTERN = re.compile(r"^\s*(\d+)\s*(s|m|h|d|w|mo)\s*$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
WINDOW_ANCHOR = 4 * 86400.0  # 1970-01-05 00:00 UTC, a Monday
LIFETIME_START = 0.0


class DurationError(ValueError):
    """A duration string that cannot be parsed; the message says what is accepted."""


@dataclass(frozen=True, slots=True)
class Duration:
    count: int
    unit: str  # s | m | h | d | w | mo

    @property
    def months(self) -> int:
        return self.count if self.unit == "mo" else 0

    @property
    def seconds(self) -> float:
        """Length of a fixed window (months have no fixed length: 0)."""
        return float(self.count * _SECONDS[self.unit]) if self.unit != "mo" else 0.0

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"


def parse_duration(text: str) -> Duration:
    match = _PATTERN.match(text) if isinstance(text, str) else None
    if not match or int(match.group(1)) <= 0:
        raise DurationError(f"invalid duration {text!r}: use a positive number followed by s, m, h, d, w or mo "
                            '(e.g. "30s", "1h", "7d", "1mo")')
    return Duration(int(match.group(1)), match.group(2))


def _month_index(ts: float) -> int:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return (dt.year - 1970) * 12 + dt.month - 1


def _month_start(index: int) -> float:
    year, month = divmod(index, 12)
    return datetime(1970 + year, month + 1, 1, tzinfo=timezone.utc).timestamp()


def window_start(duration: Duration | None, now: float) -> float:
    """Start of the window containing ``now``; a budget with no duration never resets."""
    if duration is None:
        return LIFETIME_START
    if duration.unit == "mo":
        index = _month_index(now)
        return _month_start(index - index % duration.count)
    length = duration.seconds
    return WINDOW_ANCHOR + ((now - WINDOW_ANCHOR) // length) * length


def window_end(duration: Duration | None, now: float) -> float | None:
    """When the window containing ``now`` resets (None: never)."""
    if duration is None:
        return None
    if duration.unit == "mo":
        index = _month_index(window_start(duration, now))
        return _month_start(index + duration.count)
    return window_start(duration, now) + duration.seconds


def add_duration(ts: float, duration: Duration) -> float:
    """``ts`` plus ``duration`` (calendar months keep the day of month, clamped to the month's end)."""
    if duration.unit != "mo":
        return ts + duration.seconds
    dt = datetime.fromtimestamp(ts, timezone.utc)
    index = (dt.year * 12 + dt.month - 1) + duration.count
    year, month = divmod(index, 12)
    for day in (dt.day, 30, 29, 28):
        try:
            return dt.replace(year=year, month=month + 1, day=day).timestamp()
        except ValueError:
            continue
    raise AssertionError("unreachable")
