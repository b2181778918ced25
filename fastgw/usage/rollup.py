"""Spend rollups kept by the usage writer in the same transaction as the rows they sum.

``spend_daily`` (one row per UTC day, key, team, user, model group and provider) answers
``/global/spend/report``; ``spend_totals`` (one row per key, team and user) answers "how
much has this key spent". Both grow with the number of distinct combinations, not with
requests, so reports stay fast at millions of usage rows. Missing ids are stored as ''
because SQLite treats NULLs in a primary key as distinct.
"""
from __future__ import annotations

import time
from typing import Iterable

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
)

_SUMS = ("spend", "requests", "unpriced_requests", "prompt_tokens", "completion_tokens")
UPSERT_DAILY = (
    "INSERT INTO spend_daily (day, key_hash, team_id, user_id, model_group, provider, " + ", ".join(_SUMS) + ") "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (day, key_hash, team_id, user_id, model_group, provider) "
    "DO UPDATE SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)
)
UPSERT_TOTALS = (
    "INSERT INTO spend_totals (kind, id, " + ", ".join(_SUMS) + ") VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (kind, id) DO UPDATE SET " + ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)
)

_DAY_SQL = "strftime('%Y-%m-%d', ts, 'unixepoch')"
BACKFILL = (
    f"INSERT INTO spend_daily (day, key_hash, team_id, user_id, model_group, provider, {', '.join(_SUMS)}) "
    f"SELECT {_DAY_SQL}, COALESCE(key_hash, ''), COALESCE(team_id, ''), COALESCE(user_id, ''), "
    "COALESCE(model_group, ''), COALESCE(provider, ''), COALESCE(SUM(cost), 0), COUNT(*), "
    "SUM(CASE WHEN unpriced THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens) FROM usage_log "
    f"GROUP BY 1, 2, 3, 4, 5, 6",
    *(f"INSERT INTO spend_totals (kind, id, {', '.join(_SUMS)}) SELECT '{kind}', {col}, COALESCE(SUM(cost), 0), "
      "COUNT(*), SUM(CASE WHEN unpriced THEN 1 ELSE 0 END), SUM(prompt_tokens), SUM(completion_tokens) "
      f"FROM usage_log WHERE {col} IS NOT NULL GROUP BY {col}"
      for kind, col in (("key", "key_hash"), ("team", "team_id"), ("user", "user_id"))),
)

_I = {name: i for i, name in enumerate(COLUMNS)}


def day_of(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def aggregate(rows: Iterable[tuple]) -> tuple[list[tuple], list[tuple]]:
    """Sum a batch of usage rows into rollup increments (daily rows, per-entity totals)."""
    daily: dict[tuple, list] = {}
    totals: dict[tuple, list] = {}
    i_ts, i_key, i_team, i_user = _I["ts"], _I["key_hash"], _I["team_id"], _I["user_id"]
    i_model, i_provider, i_cost, i_unpriced = _I["model_group"], _I["provider"], _I["cost"], _I["unpriced"]
    i_prompt, i_completion = _I["prompt_tokens"], _I["completion_tokens"]
    for row in rows:
        sums = (row[i_cost] or 0.0, 1, 1 if row[i_unpriced] else 0, row[i_prompt] or 0, row[i_completion] or 0)
        group = (day_of(row[i_ts]), row[i_key] or "", row[i_team] or "", row[i_user] or "", row[i_model] or "",
                 row[i_provider] or "")
        _add(daily, group, sums)
        for kind, value in (("key", row[i_key]), ("team", row[i_team]), ("user", row[i_user])):
            if value:
                _add(totals, (kind, value), sums)
    return [(*k, *v) for k, v in daily.items()], [(*k, *v) for k, v in totals.items()]


def _add(target: dict[tuple, list], group: tuple, sums: tuple) -> None:
    current = target.get(group)
    if current is None:
        target[group] = list(sums)
    else:
        for i, value in enumerate(sums):
            current[i] += value
