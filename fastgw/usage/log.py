"""Write-behind usage log: requests append rows, one thread writes them to SQLite in batches.

The request path never waits on the database: ``record`` appends to a deque (no task,
no lock, no row building). A dedicated writer thread turns records into rows, sums the
rollups and commits a batch every ``flush_interval``. It runs only when the core is idle
unless it falls behind (``priority.py``), and it hands the core and the GIL back every
20 us of work, so on a gateway pinned to one core a batch holds up a request as little as
it can (measured: building the batch on the event loop was a source of multi-millisecond
p99 at c=1; so was a writer that never yielded, and so was a COMMIT, which is why the
writer's connection goes through the yielding VFS of ``fastgw/_core/writerslice.pyx``).

If the database fails (locked, deleted, disk full) rows stay pending and are retried;
only a full queue drops rows, and every drop is counted and logged, never silent.
"""
from __future__ import annotations

import _sqlite3  # the C module: the shared object that links the SQLite the writer's VFS wraps
import asyncio
import collections
import logging
import math
import os
import sqlite3
import threading
import time
from typing import TYPE_CHECKING, Callable, get_type_hints

import msgspec

from .. import sqlite_file
from .._core import usagerows, writerslice
from . import rollup
from .priority import WriterPriority
from .record import COLUMNS, UsageRecord

if TYPE_CHECKING:
    from .retention import PruneJob  # the type only: retention.py drives the log, not the reverse

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
    # spend logs filtered by model over a time range (a few models: a few pages per batch)
    "CREATE INDEX IF NOT EXISTS usage_log_model_ts ON usage_log (model_group, ts)",
    # Indexes by key, team and user are gone: each cost a page per scope per batch (rollup.py).
    # Budget windows read ``spend_minutes``; spend logs by scope scan ids (governance/spend.py).
    "DROP INDEX IF EXISTS usage_log_key_ts",
    "DROP INDEX IF EXISTS usage_log_team_ts",
    "DROP INDEX IF EXISTS usage_log_user_ts",
)


def _bind_kinds() -> bytes:
    """How each column's value is bound (``usagerows``): from ``UsageRecord``'s field types."""
    kinds = {str | None: usagerows.TEXT, float | None: usagerows.REAL, bool: usagerows.BOOL}
    hints = get_type_hints(UsageRecord)
    return bytes(kinds.get(hints[col], usagerows.KEEP) for col in COLUMNS)


BIND_KINDS = _bind_kinds()
INSERT = (f"INSERT INTO usage_log ({', '.join(COLUMNS)}) VALUES ("
          + ", ".join("NULLIF(?, 0)" if kind == usagerows.TEXT else "?" for kind in BIND_KINDS) + ")")
YIELD_CHECK_ROWS = 4  # rows built between two checks of the writer's time slice
CHUNK_IDLE = 4  # rows per INSERT/upsert call while idle-only: its 20-us slice is a few rows
CHUNK_NICED = 128  # ... while niced (behind): per-call overhead matters more than a 1-ms slice
YIELD_CHECK_OPS = 50  # SQLite VM steps between two checks inside a statement
# (200 let the writer run 50-100 us between checks: an index insert is a few VM steps of
# several us each. c=1 p99, 3 interleaved rounds of one tree: 663-721 us with 50, 727-1,134
# with 200; c=64 alike. A later 5-round A/B of whole trees could not resolve it.)
VFS = "fastgw-writerslice"  # SQLite VFS whose file reads and writes check the writer's slice
QUANTUM_IDLE = 20e-6  # longest run without handing back the core while idle-only
QUANTUM_NICED = 1e-3  # ... while niced (behind): long enough to keep its share of a busy core
# (c=64 for 40 s, queue sampled every 0.2 s: peak 6,787 rows with 1 ms, as without yields;
# with 200 us the writer fell behind until the 100,000-row cap)
CYCLE_BUDGET = 0.01  # seconds of retention cleanup per writer cycle at least (retention.py, _prune_some)
FLUSH_INTERVAL = 0.05  # seconds between batches while the writer keeps up
# Why 0.05, not 0.2: the tail at c=1. wrk -c1 through the gateway (6,500 rows/s), 12
# interleaved 5-s rounds on the EPYC host: p99 median 383 us (347-429, one round 1.6 ms)
# at 0.05 against 471 us (376-818, one 1.9 ms) at 0.2; lower in 10 of the 12 pairs. Why is
# not established: writing the batch idle-only instead of niced while it holds the lock
# (``priority.holding_lock``) measured worse (p99 393-1,722 against 335-491 us, 5 rounds).
# The price: smaller batches cost the writer 7.4 instead of 5.8 us per row
# (benchmarks/bench_usage_writer.py, 325 against 1,300 rows), about 1% of a core at that
# rate; under load batches grow by themselves (the writer takes everything queued), and
# CPU per request at c=64 was alike.


class UsageLog:
    def __init__(self, path: str, queue_size: int = 100_000, batch_size: int = 500,
                 flush_interval: float = FLUSH_INTERVAL) -> None:
        self.path = path
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.priority = WriterPriority(flush_interval=flush_interval)  # idle-only while it keeps up (priority.py)
        self._flushed_at = time.monotonic()
        self._quantum_idle = False  # writer thread: the priority its time slice was set for
        self._queue: collections.deque[UsageRecord] = collections.deque()  # appended by the loop, taken by the writer
        self._pending: list[tuple] = []  # writer thread: rows taken off the queue but not yet committed
        self._queued = 0  # rows ever queued (loop thread); rows are FIFO, so row n is written once written >= n
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._waiters_lock = threading.Lock()
        self._wake = threading.Event()
        self._exit = False
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._db: sqlite3.Connection | None = None
        self._inode: int | None = None
        self.dropped = 0
        self.written = 0
        self.write_errors = 0
        self.last_error: str | None = None
        self.pricer: Callable[[UsageRecord], None] | None = None  # fills in a row's cost (governance)
        self._prune_job: PruneJob | None = None  # retention.py: set by the loop, worked off by the writer

    @property
    def queue_depth(self) -> int:
        """Rows recorded and not yet committed (exact: rows the writer is taking off the
        queue are in neither the queue nor ``_pending`` for a moment)."""
        return self._queued - self.written

    def record(self, row: UsageRecord) -> None:
        if self.pricer is not None:
            try:
                self.pricer(row)
            except Exception:  # pricing must never cost the row
                log.exception("pricing the usage row of request %s failed", row.request_id)
        if len(self._queue) >= self.queue_size:
            self.dropped += 1
            log.error("usage log queue full: dropped the row of request %s (%d dropped so far)", row.request_id,
                      self.dropped)
            return
        self._queue.append(row)
        self._queued += 1
        priority = self.priority
        if priority.idle and len(self._queue) > priority.high:
            priority.behind()  # an idle-only writer on a busy core may not get to notice

    async def start(self) -> None:
        await asyncio.to_thread(self._connect)  # a database that cannot be opened fails start-up
        self._thread = threading.Thread(target=self._run, name="fastgw-usage-writer", daemon=True)
        self._thread.start()

    # -- writer thread ----------------------------------------------------------------
    def _connect(self, deadline: float = sqlite_file.SETUP_DEADLINE) -> None:
        def setup(db: sqlite3.Connection) -> None:
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute(SCHEMA)
            _add_missing_columns(db)
            for statement in INDEXES:
                db.execute(statement)
            _create_rollups(db)

        db = sqlite_file.open_prepared(self.path, setup, timeout=1.0, deadline=deadline, vfs=_yielding_vfs(),
                                       isolation_level="DEFERRED", check_same_thread=False)
        db.set_progress_handler(writerslice.slice_check, YIELD_CHECK_OPS)  # returns None: never aborts
        self._db = db
        self._inode = os.stat(self.path).st_ino

    def _run(self) -> None:
        self.priority.start()
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            exiting = self._exit
            began = time.monotonic()
            if exiting or self._stopping:
                self.priority.normal()  # the last flush must not wait for an idle core
            else:
                self.priority.adjust(self.queue_depth, began - self._flushed_at)
            self._set_quantum()
            writerslice.restart()  # it has just slept: a new slice
            rows_before = self.written
            try:
                written = self._write_queued()
                if written:
                    self._flushed_at = began  # everything queued before `began` is on disk
            except Exception:  # a bug must not end the writer: the rows stay pending
                log.exception("usage log writer failed")
                written = False
            if written and self._prune_job is not None and not (exiting or self._stopping):
                self._prune_some(self.written - rows_before)
            if exiting:
                self._cancel_prune()
                return
            if not written:
                self._wake.wait(min(5.0, 0.25 * 2 ** min(self.write_errors, 4)))

    def _write_queued(self) -> bool:
        """Write what is queued now (not what keeps arriving), in batches; False on a database error."""
        remaining = len(self._queue)
        while True:
            if not self._pending:
                if remaining <= 0:
                    return True
                take = min(remaining, self.batch_size * 4)
                remaining -= take
                self._pending = self._take(take)
            if not self._write_pending():
                return False

    def _take(self, count: int) -> list[tuple]:
        rows = []
        popleft = self._queue.popleft
        astuple = msgspec.structs.astuple
        slice_check = self._slice_check
        for i in range(count):
            rows.append(astuple(popleft()))
            if i % YIELD_CHECK_ROWS == YIELD_CHECK_ROWS - 1:
                slice_check()
        return rows

    def _set_quantum(self) -> None:
        """The writer thread's slice (``writerslice``), checked between rows, inside statements
        (progress handler) and before every file read and write of its connection.

        Why: this kernel defers a woken thread's preemption of a running one to the next
        tick, even of an idle-only thread, so a request that arrives while the writer runs
        waits until the writer blocks or yields: 1-4 ms. Measured at c=1, p99 2.0 ms with the
        writer on the gateway's core, 0.3 ms with it paused. Yielding every 20 us of work
        (idle-only) bounds the wait; niced (behind) it yields every 1 ms so it still gets its
        share of a saturated core. Either slice doubles by itself while the writer's yields
        keep waiting a whole scheduler slice, until it stops yielding (``writerslice``): on a
        saturated core every yield gave up part of the writer's share, and with the COMMIT
        yielding too it fell behind under load (queue peaks of 20,000 rows against 8,000, RSS
        steps of 10-37 MB in the soak); a yield that returns quickly restores the slice."""
        self._quantum_idle = self.priority.idle
        writerslice.set_quantum(QUANTUM_IDLE if self._quantum_idle else QUANTUM_NICED, math.inf)

    def _slice_check(self) -> None:
        """Between rows: the quantum follows the priority at once (``behind()`` comes from the
        event loop; a niced writer yielding every 20 us starves on a busy core)."""
        if self.priority.idle is not self._quantum_idle:
            self._set_quantum()
        writerslice.slice_check()

    def _write_pending(self) -> bool:
        rows = self._pending
        try:
            if self._db is None or self._file_replaced():
                self._reconnect()
            assert self._db is not None
            with self.priority.holding_lock():  # niced while other writers of the file may wait
                self._commit(self._db, rows)
        except Exception as exc:  # any database failure: keep the rows, report, retry
            self.write_errors += 1
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("usage log write failed (%d rows kept for retry): %s", len(rows), self.last_error)
            return False
        self.written += len(rows)
        self._pending = []
        self.write_errors = 0
        self.last_error = None
        self._wake_waiters()
        return True

    def _commit(self, db: sqlite3.Connection, rows: list[tuple]) -> None:
        """The rows and their rollups in one transaction, or nothing (rolled back, kept for retry).

        A few rows per statement, the time slice checked in between (and inside, by the
        progress handler): a whole batch in one ``executemany`` held the core for ~1 ms, its
        rows' binding and the Python around it being out of the progress handler's reach.
        Niced (behind, on a busy core), bigger chunks: with 4 rows per call the writer fell
        further behind under load (soak: queue peaks and RSS steps). The rollups are this
        batch's own rows, folded here (``rollup.Fold``), so another worker's writer committing
        meanwhile can never be counted twice."""
        slice_check = self._slice_check
        fold = rollup.Fold()
        size = CHUNK_IDLE if self.priority.idle else CHUNK_NICED
        try:
            db.execute("BEGIN IMMEDIATE")
            for start in range(0, len(rows), size):
                chunk = rows[start:start + size]
                db.executemany(INSERT, usagerows.bindable(chunk, BIND_KINDS))  # no per-value adaptation
                fold.add(chunk)
                slice_check()
            for statement, params in fold.upserts():
                for start in range(0, len(params), size):
                    db.executemany(statement, params[start:start + size])
                    slice_check()
            db.commit()  # its WAL writes and checkpoint yield in the VFS
        except BaseException:
            self._rollback()  # a half-done batch must not be committed twice by the retry
            raise

    def prune(self, job: PruneJob) -> None:
        """Have the writer delete old rows (``retention.PruneJob``); ``job.future`` tells when it is
        done. A newer job replaces one still under way, which is settled with what it deleted."""
        previous, self._prune_job = self._prune_job, job
        if previous is not None:
            previous.finish()

    def _prune_some(self, inserted: int) -> None:
        """The cleanup's share of this cycle, after the cycle's rows are written: chunks until
        ``CYCLE_BUDGET`` has passed and twice the rows this cycle inserted are deleted (or none
        is left).

        Why both: a saturated gateway always has rows queued and its writer runs in bursts when
        it falls behind, so a fixed time share deleted far fewer rows than arrived (measured at
        c=64: 24,000 of ~90,000 old rows in 35 s). Twice the inserted rows keeps ahead of any
        arrival rate and catches up a backlog; the time share works off a backlog while quiet."""
        job = self._prune_job
        if job is None or self._db is None:
            return
        deadline = time.monotonic() + CYCLE_BUDGET
        quota = job.rows + job.minutes + 2 * inserted
        try:
            while not self._stopping:
                with self.priority.holding_lock():
                    finished = job.step(self._db)
                if finished or (time.monotonic() >= deadline and job.rows + job.minutes >= quota):
                    break
        except Exception as exc:  # the database failed: report it; the next cleanup tries again
            log.error("usage log retention: deleting old rows failed: %s: %s", type(exc).__name__, exc)
            self._end_prune(job, exc)
            return
        if job.rows_done and job.minutes_done:
            self._end_prune(job)

    def _end_prune(self, job: PruneJob, error: BaseException | None = None) -> None:
        if self._prune_job is job:
            self._prune_job = None
        job.finish(error)

    def _cancel_prune(self) -> None:
        job = self._prune_job
        if job is not None:
            self._end_prune(job, RuntimeError("the usage log stopped before the cleanup finished"))

    def _file_replaced(self) -> bool:
        """Deleted or replaced under the open connection (rows would go to an unlinked file)."""
        try:
            return os.stat(self.path).st_ino != self._inode
        except FileNotFoundError:
            return True

    def _rollback(self) -> None:
        if self._db is not None:
            try:
                self._db.rollback()
            except Exception:
                pass

    def _reconnect(self) -> None:
        if self._db is not None:
            try:
                self._db.close()
            except Exception:
                pass
            self._db = None
        self._connect(deadline=2.0)  # short: the writer retries on its next cycle anyway

    def _wake_waiters(self) -> None:
        with self._waiters_lock:
            ready = [w for w in self._waiters if w[0] <= self.written]
            if not ready:
                return
            self._waiters = [w for w in self._waiters if w[0] > self.written]
        for _, loop, future in ready:
            loop.call_soon_threadsafe(_resolve, future)

    # -- event loop side ----------------------------------------------------------------
    async def flush(self) -> None:
        """Wait until every row recorded so far is committed (tests and shutdown)."""
        target = self._queued
        if self.written >= target:
            return
        future = asyncio.get_running_loop().create_future()
        with self._waiters_lock:
            self._waiters.append((target, asyncio.get_running_loop(), future))
        if self.written >= target:  # committed between the check and the registration
            self._wake_waiters()
        self._wake.set()
        await future

    async def stop(self, timeout: float = 10.0) -> None:
        if self._thread is not None:
            self._stopping = True  # niced from here on: the last rows must not wait for an idle core
            self.priority.normal()
            try:
                await asyncio.wait_for(self.flush(), timeout)
            except asyncio.TimeoutError:
                pass  # what is still unwritten once the writer has stopped is counted below
            self._exit = True
            self._wake.set()
            await asyncio.to_thread(self._thread.join, 10.0)
            lost = self.queue_depth
            if lost:
                self.dropped += lost
                log.error("usage log: could not write %d rows before shutdown (%s)", lost, self.last_error)
            self._thread = None
        if self._db is not None:
            self._db.close()
            self._db = None

    def healthy(self) -> bool:
        return self.last_error is None


def _yielding_vfs() -> str | None:
    """The writer's VFS (registered once per process), or None where SQLite's API cannot be
    reached: the writer then yields only between statements and inside them."""
    library = getattr(_sqlite3, "__file__", None)  # None: sqlite3 built into the interpreter
    if library and writerslice.register(library, VFS):
        return VFS
    log.warning("usage log: SQLite's VFS API not found (%s); COMMITs will not yield the core", library)
    return None


def _resolve(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


def _add_missing_columns(db: sqlite3.Connection) -> None:
    """A database written by an older fastgw lacks newer columns: add them (NULL/default in old rows)."""
    present = {row[1] for row in db.execute("PRAGMA table_info(usage_log)").fetchall()}
    for col in COLUMNS:
        if col not in present:
            sql_type = _SQL_TYPES.get(col, "TEXT").replace(" NOT NULL", "")
            db.execute(f"ALTER TABLE usage_log ADD COLUMN {col} {sql_type}")


def _create_rollups(db: sqlite3.Connection) -> None:
    """Create the spend rollups; on a database that predates one, fill it from the rows."""
    existed = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for statement in rollup.SCHEMA:
        db.execute(statement)
    for table, backfill in rollup.ROLLUP_SINCE.items():
        if table not in existed:
            for statement in backfill:
                db.execute(statement, (0,))

