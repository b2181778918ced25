"""Spend rollups kept by the usage writer in the same transaction as the rows they sum.

``spend_daily`` (one row per UTC day, key, team, user, model group and provider) answers
``/global/spend/report``; ``spend_totals`` (one row per key, team and user) answers "how
much has this key spent"; ``spend_minutes`` (one row per minute and key, team or user)
answers "how much since this budget window began" when a budget is rebuilt. All grow with
the number of distinct combinations, not with requests, so they stay fast at millions of
usage rows. Missing ids are stored as '' because SQLite treats NULLs in a primary key as
distinct.

Why ``spend_minutes`` and not an index of the usage rows by key: such an index takes one
entry per row, and a batch's entries land on one page per key, so with 100 keys every
0.2-s batch rewrote ~100 index pages (4.5 us of COMMIT per row; writer CPU per row 10-12%
of the core at c=1 against 6-7% without it, and c=1 p99 ~150 us higher:
benchmarks/README.md). ``spend_minutes`` is keyed by minute first, so a batch's upserts
touch a few adjacent pages; its index by scope gains an entry per scope per minute only.

The writer folds each batch in Python (``fold``) and adds the sums with one upsert per
group, in the transaction that inserts the batch's rows: a batch's rollups are exactly its
own rows, whatever other workers' writers commit meanwhile (the id-range statements of
``ROLLUP_SINCE`` needed the last id read under the write lock to get that right; they are
now only the one-time backfill). Why: their GROUP BY sort is one SQLite step that cannot
yield the core (0.2-0.3 ms per 0.2-s batch at c=1), while folding checks the writer's time
slice every few rows. The cost is the same: 3.0 us per row with the upserts, against 2.9
for the statements (``benchmarks/bench_usage_writer.py``, 500-row batches, 100 keys).
"""
from __future__ import annotations

import time
from typing import Sequence

from .record import COLUMNS

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spend_daily (day TEXT NOT NULL, key_hash TEXT NOT NULL, team_id TEXT NOT NULL, "
    "user_id TEXT NOT NULL, model_group TEXT NOT NULL, provider TEXT NOT NULL, spend REAL NOT NULL DEFAULT 0, "
    "requests INTEGER NOT NULL DEFAULT 0, unpriced_requests INTEGER NOT NULL DEFAULT 0, "
    "prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY (day, key_hash, team_id, user_id, model_group, provider)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS spend_totals (kind TEXT NOT NULL, id TEXT NOT NULL, spend REAL NOT NULL DEFAULT 0, "
    "requests INTEGER NOT NULL DEFAULT 0, unpriced_requests INTEGER NOT NULL DEFAULT 0, "
    "prompt_tokens INTEGER NOT NULL DEFAULT 0, completion_tokens INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY (kind, id)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS spend_minutes (minute INTEGER NOT NULL, kind TEXT NOT NULL, id TEXT NOT NULL, "
    "spend REAL NOT NULL DEFAULT 0, requests INTEGER NOT NULL DEFAULT 0, "
    "PRIMARY KEY (minute, kind, id)) WITHOUT ROWID",
    # no spend in it: an upsert that only adds to a scope's minute leaves the index alone
    "CREATE INDEX IF NOT EXISTS spend_minutes_scope ON spend_minutes (kind, id, minute)",
)

_SUMS = ("spend", "requests", "unpriced_requests", "prompt_tokens", "completion_tokens")
_SUM_EXPRS = ("COALESCE(SUM(cost), 0), COUNT(*), SUM(CASE WHEN unpriced THEN 1 ELSE 0 END), SUM(prompt_tokens), "
              "SUM(completion_tokens)")
_ADD = ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)
_ADD_MINUTE = "spend = spend + excluded.spend, requests = requests + excluded.requests"
_DAY_SQL = "strftime('%Y-%m-%d', ts, 'unixepoch')"
MINUTE_SQL = "CAST(ts / 60 AS INTEGER)"  # what ``minute_of`` computes, for SQL
_SCOPES = (("key", "key_hash"), ("team", "team_id"), ("user", "user_id"))

# Per rollup table, the statements that fold the usage rows with ``id > ?`` into it: the backfill of a
# database written before the rollups existed (``id > 0``). NOT INDEXED: read the rows by
# their id range. Without it the planner took the key_hash index for ``key_hash IS NOT NULL
# ... GROUP BY key_hash`` and walked the whole index on every batch (2 s at 711,000 rows,
# when these statements ran per batch), so the writer fell further behind as the table grew.
ROLLUP_SINCE = {
    "spend_daily": (
        f"INSERT INTO spend_daily (day, key_hash, team_id, user_id, model_group, provider, {', '.join(_SUMS)}) "
        f"SELECT {_DAY_SQL}, COALESCE(key_hash, ''), COALESCE(team_id, ''), COALESCE(user_id, ''), "
        f"COALESCE(model_group, ''), COALESCE(provider, ''), {_SUM_EXPRS} FROM usage_log NOT INDEXED WHERE id > ? "
        f"GROUP BY 1, 2, 3, 4, 5, 6 ON CONFLICT (day, key_hash, team_id, user_id, model_group, provider) "
        f"DO UPDATE SET {_ADD}",),
    "spend_totals": tuple(
        f"INSERT INTO spend_totals (kind, id, {', '.join(_SUMS)}) SELECT '{kind}', {col}, {_SUM_EXPRS} "
        f"FROM usage_log NOT INDEXED WHERE id > ? AND {col} IS NOT NULL AND {col} <> '' GROUP BY {col} "
        f"ON CONFLICT (kind, id) DO UPDATE SET {_ADD}"
        for kind, col in _SCOPES),
    "spend_minutes": tuple(
        f"INSERT INTO spend_minutes (minute, kind, id, spend, requests) SELECT {MINUTE_SQL}, '{kind}', {col}, "
        f"COALESCE(SUM(cost), 0), COUNT(*) FROM usage_log NOT INDEXED WHERE id > ? AND {col} IS NOT NULL "
        f"AND {col} <> '' GROUP BY 1, 3 ON CONFLICT (minute, kind, id) DO UPDATE SET {_ADD_MINUTE}"
        for kind, col in _SCOPES),
}

UPSERT_DAILY = (f"INSERT INTO spend_daily (day, key_hash, team_id, user_id, model_group, provider, {', '.join(_SUMS)}) "
                f"VALUES ({', '.join('?' * (6 + len(_SUMS)))}) "
                f"ON CONFLICT (day, key_hash, team_id, user_id, model_group, provider) DO UPDATE SET {_ADD}")
UPSERT_MINUTES = ("INSERT INTO spend_minutes (minute, kind, id, spend, requests) VALUES (?, ?, ?, ?, ?) "
                  f"ON CONFLICT (minute, kind, id) DO UPDATE SET {_ADD_MINUTE}")
UPSERT_TOTALS = (f"INSERT INTO spend_totals (kind, id, {', '.join(_SUMS)}) VALUES ({', '.join('?' * (2 + len(_SUMS)))}) "
                 f"ON CONFLICT (kind, id) DO UPDATE SET {_ADD}")

_TS, _KEY, _TEAM, _USER, _MODEL, _PROVIDER, _COST, _UNPRICED, _PROMPT, _COMPLETION = (
    COLUMNS.index(name) for name in ("ts", "key_hash", "team_id", "user_id", "model_group", "provider", "cost",
                                     "unpriced", "prompt_tokens", "completion_tokens"))


def minute_of(ts: float) -> int:
    """The ``spend_minutes`` minute of a row's ``ts``: SQLite's ``CAST(ts / 60 AS INTEGER)``
    (the same double division and truncation, so a backfill and the writer agree)."""
    return int(ts / 60)


class Fold:
    """The upsert parameters of a batch of usage rows (tuples in ``COLUMNS`` order), added a
    few rows at a time (the writer checks its time slice in between): one per (UTC day, key,
    team, user, model group, provider), one per key, team and user, and one per minute and
    key, team or user. Sums as ``ROLLUP_SINCE`` computes them: a missing cost counts 0,
    ``unpriced`` rows are counted."""

    def __init__(self) -> None:
        self._daily: dict[tuple, list] = {}
        self._totals: dict[tuple, list] = {}
        self._minutes: dict[tuple, list] = {}
        self._days: dict[int, str] = {}

    def add(self, rows: Sequence[tuple]) -> None:
        daily, totals, minutes, days = self._daily, self._totals, self._minutes, self._days
        for row in rows:
            ts = row[_TS]
            day_number = int(ts // 86400)
            day = days.get(day_number)
            if day is None:
                day = days[day_number] = time.strftime("%Y-%m-%d", time.gmtime(day_number * 86400))
            minute = int(ts / 60)  # minute_of, inlined: this loop runs per row
            key, team, user = row[_KEY], row[_TEAM], row[_USER]
            cost = row[_COST] or 0.0
            sums = (cost, 1 if row[_UNPRICED] else 0, row[_PROMPT], row[_COMPLETION])
            _add(daily, (day, key or "", team or "", user or "", row[_MODEL] or "", row[_PROVIDER] or ""), sums)
            for kind, ident in (("key", key), ("team", team), ("user", user)):
                if ident:
                    _add(totals, (kind, ident), sums)
                    spent = minutes.get((minute, kind, ident))
                    if spent is None:
                        minutes[(minute, kind, ident)] = [cost, 1]
                    else:
                        spent[0] += cost
                        spent[1] += 1

    def daily(self) -> list[tuple]:
        """Parameters of ``UPSERT_DAILY``."""
        return [(*group, *sums) for group, sums in self._daily.items()]

    def totals(self) -> list[tuple]:
        """Parameters of ``UPSERT_TOTALS``."""
        return [(*group, *sums) for group, sums in self._totals.items()]

    def minutes(self) -> list[tuple]:
        """Parameters of ``UPSERT_MINUTES``."""
        return [(*group, *sums) for group, sums in self._minutes.items()]

    def upserts(self) -> tuple[tuple[str, list[tuple]], ...]:
        """Each upsert statement with its parameters."""
        return ((UPSERT_DAILY, self.daily()), (UPSERT_TOTALS, self.totals()), (UPSERT_MINUTES, self.minutes()))


def _add(table: dict[tuple, list], group: tuple, sums: tuple) -> None:
    cost, unpriced, prompt, completion = sums
    current = table.get(group)
    if current is None:
        table[group] = [cost, 1, unpriced, prompt, completion]
    else:
        current[0] += cost
        current[1] += 1
        current[2] += unpriced
        current[3] += prompt
        current[4] += completion
