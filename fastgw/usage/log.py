"""Write-behind usage log: requests enqueue rows, one task writes them to SQLite in batches.

The request path never waits on the database. If the database fails (locked, deleted,
disk full) rows stay queued and are retried; only a full queue drops rows, and every
drop is counted and logged, never silent.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Callable

import aiosqlite

from . import rollup
from .record import COLUMNS, UsageRecord

log = logging.getLogger("fastgw.usage")

_SQL_TYPES = {
    "ts": "REAL NOT NULL", "request_id": "TEXT NOT NULL", "endpoint": "TEXT NOT NULL", "status": "INTEGER NOT NULL",
    "latency_ms": "REAL", "ttft_ms": "REAL", "stream": "INTEGER NOT NULL", "attempts": "INTEGER NOT NULL",
    "prompt_tokens": "INTEGER NOT NULL", "completion_tokens": "INTEGER NOT NULL", "cached_tokens": "INTEGER NOT NULL",
    "cache_creation_tokens": "INTEGER NOT NULL", "reasoning_tokens": "INTEGER NOT NULL",
    "retried": "INTEGER NOT NULL DEFAULT 0",
    "cost": "REAL", "input_cost": "REAL", "output_cost": "REAL", "cache_read_cost": "REAL",
    "cache_creation_cost": "REAL", "unpriced": "INTEGER NOT NULL DEFAULT 0",
    "cache_hit": "INTEGER NOT NULL DEFAULT 0",
}

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS usage_log (id INTEGER PRIMARY KEY AUTOINCREMENT, "
    + ", ".join(f"{col} {_SQL_TYPES.get(col, 'TEXT')}" for col in COLUMNS)
    + ")"
)
INDEXES = (
    "CREATE INDEX IF NOT EXISTS usage_log_ts ON usage_log (ts)",
    "CREATE INDEX IF NOT EXISTS usage_log_request_id ON usage_log (request_id)",
    # spend logs filtered by key, team, user or model over a time range; budget rebuilds at start-up
    "CREATE INDEX IF NOT EXISTS usage_log_key_ts ON usage_log (key_hash, ts)",
    "CREATE INDEX IF NOT EXISTS usage_log_team_ts ON usage_log (team_id, ts) WHERE team_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS usage_log_user_ts ON usage_log (user_id, ts) WHERE user_id IS NOT NULL",
    "CREATE INDEX IF NOT EXISTS usage_log_model_ts ON usage_log (model_group, ts)",
)
INSERT = f"INSERT INTO usage_log ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"


class UsageLog:
    def __init__(self, path: str, queue_size: int = 100_000, batch_size: int = 500, flush_interval: float = 0.2) -> None:
        self.path = path
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._queue: asyncio.Queue[UsageRecord] = asyncio.Queue(maxsize=queue_size)
        self._pending: list[tuple] = []  # rows taken off the queue but not yet committed
        self._task: asyncio.Task | None = None
        self._db: aiosqlite.Connection | None = None
        self._stopping = False
        self._write_lock = asyncio.Lock()  # shutdown must not cancel a write halfway
        self.dropped = 0
        self.written = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self.pricer: Callable[[UsageRecord], None] | None = None  # fills in a row's cost (governance)
        self._inode: int | None = None

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + len(self._pending)

    def record(self, row: UsageRecord) -> None:
        if self.pricer is not None:
            try:
                self.pricer(row)
            except Exception:  # pricing must never cost the row
                log.exception("pricing the usage row of request %s failed", row.request_id)
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            self.dropped += 1
            log.error("usage log queue full: dropped the row of request %s (%d dropped so far)", row.request_id,
                      self.dropped)

    async def start(self) -> None:
        await self._connect()
        self._task = asyncio.create_task(self._run(), name="fastgw-usage-writer")

    async def _connect(self) -> None:
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        db = await aiosqlite.connect(self.path, timeout=1.0)
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute(SCHEMA)
        await _add_missing_columns(db)
        for statement in INDEXES:
            await db.execute(statement)
        await _create_rollups(db)
        await db.commit()
        self._db = db
        self._inode = os.stat(self.path).st_ino

    async def _run(self) -> None:
        while True:
            if not self._pending:
                first = await self._queue.get()
                self._pending.append(_row(first))
                deadline = time.monotonic() + self.flush_interval
                while len(self._pending) < self.batch_size and not self._stopping:
                    timeout = deadline - time.monotonic()
                    if timeout <= 0:
                        break
                    try:
                        self._pending.append(_row(await asyncio.wait_for(self._queue.get(), timeout)))
                    except asyncio.TimeoutError:
                        break
            self._drain_nowait()
            if not await self._write():
                await asyncio.sleep(min(5.0, 0.25 * 2 ** min(self.write_errors, 4)))

    def _drain_nowait(self) -> None:
        while len(self._pending) < self.batch_size * 4:
            try:
                self._pending.append(_row(self._queue.get_nowait()))
            except asyncio.QueueEmpty:
                return

    async def _write(self) -> bool:
        async with self._write_lock:
            return await self._write_locked()

    async def _write_locked(self) -> bool:
        rows = self._pending
        if not rows:
            return True
        try:
            if self._db is None or self._file_replaced():
                await self._reconnect()
            assert self._db is not None
            await self._db.executemany(INSERT, rows)
            daily, totals = rollup.aggregate(rows)  # same transaction: rollups never drift from rows
            await self._db.executemany(rollup.UPSERT_DAILY, daily)
            await self._db.executemany(rollup.UPSERT_TOTALS, totals)
            await self._db.commit()
        except Exception as exc:  # any database failure: keep the rows, report, retry
            await self._rollback()  # a half-done batch must not be committed twice by the retry
            self.write_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("usage log write failed (%d rows kept for retry): %s", len(rows), self.last_error)
            return False
        self.written += len(rows)
        self._pending = []
        self.write_errors = 0
        self.last_error = None
        return True

    def _file_replaced(self) -> bool:
        """Deleted or replaced under the open connection (rows would go to an unlinked file)."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            return True

    async def _rollback(self) -> None:
        if self._db is not None:
            try:
                await self._db.rollback()
            except Exception:
                pass

    async def _reconnect(self) -> None:
        if self._db is not None:
            try:
                await self._db.close()
            except Exception:
                pass
            self._db = None
        await self._connect()

    async def flush(self) -> None:
        """Write everything queued so far (tests and shutdown)."""
        self._drain_nowait()
        while self._pending or not self._queue.empty():
            if not await self._write():
                await asyncio.sleep(0.1)
            self._drain_nowait()

    async def stop(self, timeout: float = 10.0) -> None:
        self._stopping = True
        if self._task is not None:
            async with self._write_lock:
                self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("usage writer failed")
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except asyncio.TimeoutError:
            lost = self.queue_depth
            self.dropped += lost
            log.error("usage log: could not write %d rows before shutdown (%s)", lost, self.last_error)
        if self._db is not None:
            await self._db.close()
            self._db = None

    def healthy(self) -> bool:
        return self.last_error is None


async def _add_missing_columns(db: aiosqlite.Connection) -> None:
    """A database written by an older fastgw lacks newer columns: add them (NULL/default in old rows)."""
    async with db.execute("PRAGMA table_info(usage_log)") as cursor:
        present = {row[1] for row in await cursor.fetchall()}
    for col in COLUMNS:
        if col not in present:
            sql_type = _SQL_TYPES.get(col, "TEXT").replace(" NOT NULL", "")
            await db.execute(f"ALTER TABLE usage_log ADD COLUMN {col} {sql_type}")


async def _create_rollups(db: aiosqlite.Connection) -> None:
    """Create the spend rollups; on a database that predates them, fill them from the rows."""
    async with db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'spend_daily'") as cursor:
        existed = await cursor.fetchone() is not None
    for statement in rollup.SCHEMA:
        await db.execute(statement)
    if not existed:
        for statement in rollup.BACKFILL:
            await db.execute(statement)


def _row(record: UsageRecord) -> tuple:
    return tuple(getattr(record, col) for col in COLUMNS)
