"""Retention: usage rows older than a set period are deleted, a little at a time.

LiteLLM's settings, in ``general_settings``, so its configs work unchanged:

* ``maximum_spend_logs_retention_period``: how long rows are kept ("7d", "24h", "60m",
  "3600s"; also "2w"). Unset: nothing is ever deleted, as in LiteLLM.
* ``maximum_spend_logs_retention_interval``: how often the cleanup runs (default "1d"). It
  also runs once at start-up.

What goes: ``usage_log`` rows whose ``ts`` is older than the period, and ``spend_minutes``
rows older than both the period and the start of every budget window now open (a budget is
rebuilt from them after a restart, so a "30d" budget keeps 30 days of minutes even with a
"7d" period). What stays: ``spend_totals`` (lifetime spend and lifetime budgets) and
``spend_daily`` (spend reports); they grow with keys and days, not with requests.

Why in the usage writer's thread, a chunk per transaction, after each cycle's inserts: a day
of rows deleted in one statement holds SQLite's write lock (other workers' writers and admin
writes wait) and the gateway's core for seconds. Chunks keep each lock short, and the
writer's time slice (``writerslice``) hands the core back inside them as it does for inserts.
How much each cycle deletes: ``UsageLog._prune_some``.
"""
from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from ..durations import DurationError, parse_duration
from .rollup import minute_of

if TYPE_CHECKING:
    from .log import UsageLog

log = logging.getLogger("fastgw.usage")

PERIOD_SETTING = "maximum_spend_logs_retention_period"
INTERVAL_SETTING = "maximum_spend_logs_retention_interval"
DEFAULT_INTERVAL = 86400.0
CHUNK = 500  # rows deleted per transaction

DELETE_ROWS = "DELETE FROM usage_log WHERE id IN (SELECT id FROM usage_log WHERE ts < ? LIMIT ?)"
DELETE_MINUTES = ("DELETE FROM spend_minutes WHERE (minute, kind, id) IN "
                  "(SELECT minute, kind, id FROM spend_minutes WHERE minute < ? LIMIT ?)")


@dataclass(frozen=True)
class RetentionSettings:
    period: float | None = None  # seconds; None: keep everything
    interval: float = DEFAULT_INTERVAL


def _seconds(name: str, value: object) -> float:
    try:
        duration = parse_duration(value)  # type: ignore[arg-type]
    except DurationError as exc:
        raise ValueError(f"general_settings.{name}: {exc}") from None
    if duration.unit == "mo":
        raise ValueError(f'general_settings.{name}: months have no fixed length; use days (e.g. "30d")')
    return duration.seconds


def parse_retention_settings(general: dict) -> RetentionSettings:
    """Raises ``ValueError`` naming the setting when a duration cannot be used."""
    period = general.get(PERIOD_SETTING)
    interval = general.get(INTERVAL_SETTING)
    return RetentionSettings(
        period=None if period in (None, "") else _seconds(PERIOD_SETTING, period),
        interval=DEFAULT_INTERVAL if interval in (None, "") else _seconds(INTERVAL_SETTING, interval),
    )


@dataclass
class PruneJob:
    """One cleanup, carried out by the writer thread over as many cycles as it takes."""

    before: float  # usage_log rows with ts < before go
    minutes_before: int  # spend_minutes rows with minute < minutes_before go
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future
    rows: int = 0
    minutes: int = 0
    rows_done: bool = False
    minutes_done: bool = False
    started: float = field(default_factory=time.monotonic)

    def step(self, db: sqlite3.Connection) -> bool:
        """Delete one chunk in its own transaction; True once nothing is left to delete."""
        chunk = CHUNK
        db.execute("BEGIN IMMEDIATE")
        try:
            if not self.rows_done:
                deleted = db.execute(DELETE_ROWS, (self.before, chunk)).rowcount
                self.rows += deleted
                self.rows_done = deleted < chunk
            else:
                deleted = db.execute(DELETE_MINUTES, (self.minutes_before, chunk)).rowcount
                self.minutes += deleted
                self.minutes_done = deleted < chunk
            db.commit()
        except BaseException:
            db.rollback()
            raise
        return self.rows_done and self.minutes_done

    def finish(self, error: BaseException | None = None) -> None:
        """From the writer thread: hand the outcome to the event loop that asked."""
        result = (self.rows, self.minutes)
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)
        except RuntimeError:  # that loop is closed: nobody waits any more
            pass


def _settle(future: asyncio.Future, result: tuple[int, int], error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class Pruner:
    """On the event loop: at start-up and every ``interval``, works out the cut-offs and has the
    usage writer delete what is older. ``budget_floor(now)`` is the start of the earliest budget
    window now open (None: no windowed budget)."""

    def __init__(self, settings: RetentionSettings, usage_log: "UsageLog",
                 budget_floor: Callable[[float], float | None], clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.usage_log = usage_log
        self.budget_floor = budget_floor
        self.clock = clock
        self.pruned_rows = 0
        self.pruned_minutes = 0
        self.runs = 0
        self.last_error: str | None = None
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self.settings.period is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="fastgw-usage-retention")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    def status(self) -> dict:
        """For ``/health/readiness``: the period (None: rows are kept forever) and what was deleted."""
        return {"period_seconds": self.settings.period, "runs": self.runs, "deleted_rows": self.pruned_rows,
                "deleted_minute_rows": self.pruned_minutes, "last_error": self.last_error}

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database failed: try again at the next interval
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.error("usage log retention: cleanup failed (retried in %gs): %s", self.settings.interval,
                          self.last_error)
            await asyncio.sleep(self.settings.interval)

    async def run_once(self) -> tuple[int, int]:
        """Delete what is older than the period now; returns (usage rows, minute rows) deleted."""
        assert self.settings.period is not None
        now = self.clock()
        before = now - self.settings.period
        floor = self.budget_floor(now)
        keep_minutes_from = before if floor is None else min(before, floor)
        loop = asyncio.get_running_loop()
        job = PruneJob(before, minute_of(keep_minutes_from), loop, loop.create_future())
        self.usage_log.prune(job)
        rows, minutes = await job.future
        self.runs += 1
        self.pruned_rows += rows
        self.pruned_minutes += minutes
        self.last_error = None
        if rows or minutes:
            log.info("usage log retention: deleted %d usage rows older than %s and %d spend-minute rows, in %.1fs",
                     rows, time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(before)), minutes,
                     time.monotonic() - job.started)
        return rows, minutes
