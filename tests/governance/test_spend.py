"""Spend queries: budget windows from the minute rollup equal the sum over the usage rows."""
from __future__ import annotations

import asyncio
import random

import pytest

from fastgw.governance import spend
from fastgw.governance.store import GovernanceStore
from fastgw.usage import UsageLog, UsageRecord

BASE = 1_700_000_040.0  # a whole minute


def records() -> list[UsageRecord]:
    rng = random.Random(11)
    out = []
    for i in range(1200):
        # whole seconds, fractions and exact minute boundaries, over ~2 hours
        ts = BASE + rng.choice([rng.randrange(0, 7200), rng.randrange(0, 120) * 60, rng.random() * 7200])
        out.append(UsageRecord(ts=ts, request_id=f"s{i}", endpoint="chat.completions", status=200,
                               key_hash=rng.choice(["k1", "k1-old", "k2", None]), team_id=rng.choice(["t1", None]),
                               user_id=rng.choice(["u1", "u2", None]), model_group="g",
                               cost=None if rng.random() < 0.1 else round(rng.random() / 100, 9)))
    return out


def expected(rows: list[UsageRecord], kind: str, ids: list[str], since: float) -> float:
    column = {"key": "key_hash", "team": "team_id", "user": "user_id"}[kind]
    return sum(r.cost or 0.0 for r in rows if getattr(r, column) in ids and (since <= 0 or r.ts >= since))


async def written_store(path: str, rows: list[UsageRecord], batch_size: int = 500) -> GovernanceStore:
    """The rows written by a real usage writer, and a governance store on the same file."""
    log = UsageLog(path, flush_interval=0.01, batch_size=batch_size)
    await log.start()
    for r in rows:
        log.record(r)
    await log.stop()
    store = GovernanceStore(path)
    await store.connect()
    return store


def test_window_spend_matches_the_rows_for_any_window_start(tmp_path):
    path = str(tmp_path / "g.db")
    rows = records()
    boundaries = [BASE + 60 * m for m in (0, 1, 17, 60, 119, 200)]
    starts = [0.0, BASE - 3600, *boundaries, *(b + 0.5 for b in boundaries), *(b - 0.25 for b in boundaries),
              *(r.ts for r in rows[:40])]

    async def main() -> None:
        store = await written_store(path, rows, batch_size=97)  # many transactions, each folding its own
        try:
            for kind, ids in (("key", ["k1", "k1-old"]), ("key", ["k2"]), ("team", ["t1"]), ("user", ["u2"]),
                              ("key", ["never-used"])):
                for since in starts:
                    got = await spend.window_spend(store, kind, ids, since)
                    assert got == pytest.approx(expected(rows, kind, ids, since), abs=1e-12), (kind, ids, since)
        finally:
            await store.close()

    asyncio.run(main())


def test_spend_logs_by_scope_are_the_scope_rows_newest_first(tmp_path):
    path = str(tmp_path / "g.db")
    rows = records()

    async def main() -> None:
        store = await written_store(path, rows)
        try:
            got = await spend.spend_logs(store, {"key_hash": "k2"}, None, None, 50, None)
            want = [r.request_id for r in rows if r.key_hash == "k2"][::-1][:50]
            assert [g["request_id"] for g in got] == want
            page2 = await spend.spend_logs(store, {"key_hash": "k2"}, None, None, 50, got[-1]["id"])
            assert [g["request_id"] for g in page2] == [r.request_id for r in rows if r.key_hash == "k2"][::-1][50:100]
            start, end = BASE + 600, BASE + 1800
            ranged = await spend.spend_logs(store, {"team_id": "t1"}, start, end, 1000, None)
            assert [g["request_id"] for g in ranged] == [r.request_id for r in rows[::-1]
                                                         if r.team_id == "t1" and start <= r.ts < end]
            assert await spend.spend_logs(store, {"user_id": "nobody"}, None, None, 50, None) == []
            assert await spend.spend_logs(store, {"user_id": "u1"}, BASE + 99999, None, 50, None) == []
        finally:
            await store.close()

    asyncio.run(main())
