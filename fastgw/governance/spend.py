"""Spend queries over the usage log and its rollups (reports, key info, budget rebuilds)."""
from __future__ import annotations

from typing import Any

from ..usage.rollup import MINUTE_SQL, minute_of
from .store import GovernanceStore

_COLUMN = {"key": "key_hash", "team": "team_id", "user": "user_id"}
_KIND = {column: kind for kind, column in _COLUMN.items()}


async def window_spend(store: GovernanceStore, kind: str, ids: list[str], since: float) -> float:
    """What a key (under any of its hashes), team or user has spent since ``since`` (0: ever).

    Whole minutes come from the ``spend_minutes`` rollup; a window that starts inside a minute
    (a budget duration in seconds) adds that minute's rows from ``since`` on, through the ``ts``
    index (at most a minute of rows)."""
    marks = ",".join("?" * len(ids))
    if since <= 0:
        row = await store.fetch_one(f"SELECT COALESCE(SUM(spend), 0) FROM spend_totals WHERE kind = ? AND id IN ({marks})",
                                    (kind, *ids))
        return float(row[0]) if row else 0.0
    first = minute_of(since)
    spend = 0.0
    if first * 60 < since:  # the rollup's minute ``first`` holds rows from before the window
        column = _COLUMN[kind]
        # the ts range only narrows the index scan (a second of slack); the minute is decided as
        # the writer decided it, so a row at the boundary is counted on exactly one side
        row = await store.fetch_one(f"SELECT COALESCE(SUM(cost), 0) FROM usage_log WHERE ts >= ? AND ts < ? "
                                    f"AND {MINUTE_SQL} = ? AND {column} IN ({marks})",
                                    (since, (first + 1) * 60 + 1, first, *ids))
        spend += float(row[0]) if row else 0.0
        first += 1
    row = await store.fetch_one(f"SELECT COALESCE(SUM(spend), 0) FROM spend_minutes WHERE kind = ? AND id IN ({marks}) "
                                f"AND minute >= ?", (kind, *ids, first))
    return spend + (float(row[0]) if row else 0.0)


async def _scope_has_rows(store: GovernanceStore, filters: dict[str, Any], start: float | None,
                          end: float | None) -> bool:
    """False when a key, team or user filter has no usage in the time range (the rollup says so
    at once; the usage rows have no index by scope, so finding none would scan them all)."""
    for column, value in filters.items():
        kind = _KIND.get(column)
        if kind is None:
            continue
        sql, params = "SELECT 1 FROM spend_minutes WHERE kind = ? AND id = ?", [kind, value]
        if start is not None:
            sql += " AND minute >= ?"
            params.append(minute_of(start))
        if end is not None:
            sql += " AND minute <= ?"
            params.append(minute_of(end))
        if await store.fetch_one(sql + " LIMIT 1", params) is None:
            return False
    return True


async def totals(store: GovernanceStore, kind: str, ids: list[str]) -> dict[str, Any]:
    marks = ",".join("?" * len(ids))
    row = await store.fetch_one("SELECT COALESCE(SUM(spend), 0), COALESCE(SUM(requests), 0), "
                                "COALESCE(SUM(unpriced_requests), 0), COALESCE(SUM(prompt_tokens), 0), "
                                f"COALESCE(SUM(completion_tokens), 0) FROM spend_totals WHERE kind = ? AND id IN ({marks})",
                                (kind, *ids))
    spend, requests, unpriced, prompt, completion = row or (0.0, 0, 0, 0, 0)
    return {"spend": spend, "requests": requests, "unpriced_requests": unpriced, "prompt_tokens": prompt,
            "completion_tokens": completion}


LOG_FIELDS = ("id", "request_id", "ts", "endpoint", "key_hash", "key_alias", "team_id", "user_id", "model_group",
              "provider", "upstream_model", "deployment_id", "status", "error_type", "stream", "retried",
              "prompt_tokens", "completion_tokens", "cached_tokens", "cache_creation_tokens", "reasoning_tokens",
              "cost", "input_cost", "output_cost", "cache_read_cost", "cache_creation_cost", "unpriced", "latency_ms")


async def spend_logs(store: GovernanceStore, filters: dict[str, Any], start: float | None, end: float | None,
                     limit: int, before_id: int | None) -> list[dict[str, Any]]:
    """Usage rows newest first; paginated by id (``before_id``) so deep pages cost the same as the first.

    A filter by key, team or user reads the rows newest first and keeps its own (no index by
    scope: rollup.py says why); one with no usage in the range returns at once."""
    if not await _scope_has_rows(store, filters, start, end):
        return []
    where, params = [], []
    for column, value in filters.items():
        where.append(f"{column} = ?")
        params.append(value)
    if start is not None:
        where.append("ts >= ?")
        params.append(start)
    if end is not None:
        where.append("ts < ?")
        params.append(end)
    if before_id is not None:
        where.append("id < ?")
        params.append(before_id)
    sql = f"SELECT {', '.join(LOG_FIELDS)} FROM usage_log"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY id DESC LIMIT ?"
    params.append(limit)
    rows = await store.fetch(sql, params)
    out = []
    for row in rows:
        item = dict(zip(LOG_FIELDS, row))
        item["stream"] = bool(item["stream"])
        item["retried"] = bool(item["retried"])
        item["unpriced"] = bool(item["unpriced"])
        out.append(item)
    return out


REPORT_GROUPS = {"key": "key_hash", "team": "team_id", "user": "user_id", "model": "model_group",
                 "provider": "provider", "day": "day"}


async def spend_report(store: GovernanceStore, group_by: str, start_day: str | None, end_day: str | None,
                       filters: dict[str, str]) -> list[dict[str, Any]]:
    """Spend grouped by one dimension from the daily rollup (never scans the usage log)."""
    column = REPORT_GROUPS[group_by]
    where, params = [], []
    if start_day:
        where.append("day >= ?")
        params.append(start_day)
    if end_day:
        where.append("day <= ?")
        params.append(end_day)
    for name, value in filters.items():
        where.append(f"{REPORT_GROUPS[name]} = ?")
        params.append(value)
    sql = (f"SELECT {column}, SUM(spend), SUM(requests), SUM(unpriced_requests), SUM(prompt_tokens), "
           f"SUM(completion_tokens) FROM spend_daily")
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" GROUP BY {column} ORDER BY 2 DESC"
    rows = await store.fetch(sql, params)
    return [{group_by: value or None, "spend": spend, "requests": requests, "unpriced_requests": unpriced,
             "prompt_tokens": prompt, "completion_tokens": completion}
            for value, spend, requests, unpriced, prompt, completion in rows]
