"""Spend reports (LiteLLM's paths): per-request logs and grouped totals; master key only."""
from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from ..auth import Principal
from ..errors import bad_request
from ..governance import spend as queries
from ..governance.keys import key_id
from ..governance.manage import Manager, unavailable
from .admin import MAX_PAGE_SIZE, endpoint, query_int

_GROUP_ALIASES = {"api_key": "key", "customer": "user", "team_id": "team", "user_id": "user", "model_group": "model"}


_LAST_TIME = 253402300800.0  # 10000-01-01 UTC: past any date ``datetime`` can spell


def parse_time(request: Request, name: str, end: bool = False) -> float | None:
    """A date (YYYY-MM-DD, whole UTC day; as an end it includes that day), an ISO time, or unix seconds."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = None
    try:
        if seconds is not None:  # inf, nan or 1e300 are numbers but no time: the rollups need a day and a minute
            if not (math.isfinite(seconds) and abs(seconds) < _LAST_TIME):
                raise ValueError(raw)
            return seconds
        if len(raw) == 10:
            day = datetime.strptime(raw, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp()
            return day + 86400 if end else day
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.timestamp()
    except ValueError:
        raise bad_request(f"{name} must be a date (YYYY-MM-DD), an ISO 8601 time or unix seconds", name) from None


def _day(ts: float | None) -> str | None:
    return time.strftime("%Y-%m-%d", time.gmtime(ts)) if ts is not None else None


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    out: dict[str, Any] = {}
    api_key = q.get("api_key") or q.get("key")
    if api_key:
        out["key_hash"] = key_id(api_key)
    for param, column in (("key_alias", "key_alias"), ("team_id", "team_id"), ("user_id", "user_id"),
                          ("model", "model_group"), ("provider", "provider"), ("request_id", "request_id")):
        if q.get(param):
            out[column] = q[param]
    return out


async def spend_logs(request: Request, m: Manager, p: Principal) -> Any:
    size = query_int(request, "page_size", 100, 1, MAX_PAGE_SIZE)
    before = query_int(request, "before_id", 0, 1) if request.query_params.get("before_id") else None
    start, end = parse_time(request, "start_date"), parse_time(request, "end_date", end=True)
    try:
        rows = await queries.spend_logs(m.gov.store, _filters(request), start, end, size + 1, before)
    except Exception as exc:
        raise unavailable(exc) from None
    more = len(rows) > size
    rows = rows[:size]
    return {"data": rows, "page_size": size, "has_more": more, "next_before_id": rows[-1]["id"] if more else None}


async def spend_report(request: Request, m: Manager, p: Principal) -> Any:
    q = request.query_params
    group = q.get("group_by", "key")
    group = _GROUP_ALIASES.get(group, group)
    if group not in queries.REPORT_GROUPS:
        raise bad_request(f"group_by must be one of {', '.join(queries.REPORT_GROUPS)}", "group_by")
    start = _day(parse_time(request, "start_date"))
    end_ts = parse_time(request, "end_date", end=True)
    end = _day(end_ts - 1) if end_ts is not None else None
    filters = {name: q[param] for param, name in (("team_id", "team"), ("user_id", "user"), ("model", "model"),
                                                  ("provider", "provider")) if q.get(param)}
    if q.get("api_key"):
        filters["key"] = key_id(q["api_key"])
    try:
        rows = await queries.spend_report(m.gov.store, group, start, end, filters)
        if group == "key":
            names = await m.gov.store.key_names([r["key"] for r in rows if r["key"]])
            for row in rows:
                row.update(names.get(row["key"] or "", {"key_alias": None, "key_name": None}))
    except Exception as exc:
        raise unavailable(exc) from None
    total = sum(r["spend"] or 0.0 for r in rows)
    unpriced = sum(r["unpriced_requests"] or 0 for r in rows)
    return {"group_by": group, "start_date": start, "end_date": end, "total_spend": total,
            "unpriced_requests": unpriced, "data": rows}


def routes() -> list[Route]:
    return [
        Route("/spend/logs", endpoint(spend_logs), methods=["GET"]),
        Route("/global/spend/report", endpoint(spend_report), methods=["GET"]),
    ]
