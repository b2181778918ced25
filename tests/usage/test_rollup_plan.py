"""The rollup statements read only the batch's new rows (their id range), never a whole index."""
from __future__ import annotations

import asyncio
import sqlite3
import time

from fastgw.usage import UsageRecord
from fastgw.usage import rollup
from fastgw.usage.log import UsageLog


def test_every_rollup_statement_reads_the_id_range(tmp_path):
    path = str(tmp_path / "u.db")

    async def fill() -> None:
        log = UsageLog(path, flush_interval=0.01)
        await log.start()
        for i in range(3000):
            log.record(UsageRecord(ts=time.time(), request_id=f"r{i}", endpoint="chat.completions", status=200,
                                   key_hash=f"k{i % 50}", team_id=f"t{i % 5}" if i % 2 else None,
                                   user_id=None, model_group="m"))
        await log.stop()

    asyncio.run(fill())
    db = sqlite3.connect(path)
    try:
        db.execute("ANALYZE")  # statistics like a long-running database's make the index tempting
        for statement in [s for backfill in rollup.ROLLUP_SINCE.values() for s in backfill]:
            select = statement[statement.index("SELECT"):statement.index(" ON CONFLICT")]
            plan = " | ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + select, (2900,)))
            assert "INTEGER PRIMARY KEY (rowid>?)" in plan, plan
    finally:
        db.close()
