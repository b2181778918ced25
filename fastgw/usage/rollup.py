"""Spend rollups kept by the usage writer in the same transaction as the rows they sum.

``spend_daily`` (one row per UTC day, key, team, user, model group and provider) answers
``/global/spend/report``; ``spend_totals`` (one row per key, team and user) answers "how
much has this key spent". Both grow with the number of distinct combinations, not with
requests, so reports stay fast at millions of usage rows. Missing ids are stored as ''
because SQLite treats NULLs in a primary key as distinct.
"""
from __future__ import annotations

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
_SUM_EXPRS = ("COALESCE(SUM(cost), 0), COUNT(*), SUM(CASE WHEN unpriced THEN 1 ELSE 0 END), SUM(prompt_tokens), "
              "SUM(completion_tokens)")
_ADD = ", ".join(f"{c} = {c} + excluded.{c}" for c in _SUMS)
_DAY_SQL = "strftime('%Y-%m-%d', ts, 'unixepoch')"

# Each statement folds the usage rows with ``id > ?`` into the rollups. The writer runs them
# in the same transaction as the batch it inserted (rollups never drift from rows); the
# summing happens inside SQLite, which releases the GIL, not in a Python loop that holds it.
# NOT INDEXED: read the new rows by their id range. Without it the planner took the key_hash
# index for ``key_hash IS NOT NULL ... GROUP BY key_hash`` and walked the whole index on every
# batch (2 s at 711,000 rows), so the writer fell further behind as the table grew.
ROLLUP_SINCE = (
    f"INSERT INTO spend_daily (day, key_hash, team_id, user_id, model_group, provider, {', '.join(_SUMS)}) "
    f"SELECT {_DAY_SQL}, COALESCE(key_hash, ''), COALESCE(team_id, ''), COALESCE(user_id, ''), "
    f"COALESCE(model_group, ''), COALESCE(provider, ''), {_SUM_EXPRS} FROM usage_log NOT INDEXED WHERE id > ? "
    f"GROUP BY 1, 2, 3, 4, 5, 6 ON CONFLICT (day, key_hash, team_id, user_id, model_group, provider) "
    f"DO UPDATE SET {_ADD}",
    *(f"INSERT INTO spend_totals (kind, id, {', '.join(_SUMS)}) SELECT '{kind}', {col}, {_SUM_EXPRS} "
      f"FROM usage_log NOT INDEXED WHERE id > ? AND {col} IS NOT NULL AND {col} <> '' GROUP BY {col} "
      f"ON CONFLICT (kind, id) DO UPDATE SET {_ADD}"
      for kind, col in (("key", "key_hash"), ("team", "team_id"), ("user", "user_id"))),
)
LAST_ID = "SELECT COALESCE(MAX(id), 0) FROM usage_log"
