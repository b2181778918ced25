"""Retention: old usage rows go, in short transactions; what budgets and reports need stays."""
from __future__ import annotations

import asyncio
import sqlite3
import time

import pytest

from fastgw.usage import UsageRecord, retention
from fastgw.usage.log import UsageLog
from fastgw.usage.retention import Pruner, RetentionSettings, parse_retention_settings

DAY = 86400.0
NOW = 1_800_000_000.0  # a fixed "now" for the pruner's clock


def record(ts: float, i: int, key: str = "k1") -> UsageRecord:
    return UsageRecord(ts=ts, request_id=f"r{i}", endpoint="chat.completions", status=200, key_hash=key,
                       team_id="t1", user_id="u1", model_group="g", provider="openai", cost=0.001)


def table(path: str, sql: str) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


async def written(path: str, records: list[UsageRecord]) -> UsageLog:
    log = UsageLog(path, flush_interval=0.01, batch_size=500)
    await log.start()
    for row in records:
        log.record(row)
    await log.flush()
    return log


@pytest.mark.parametrize(("text", "seconds"), [("7d", 7 * DAY), ("24h", DAY), ("60m", 3600.0), ("3600s", 3600.0),
                                               ("2w", 14 * DAY)])
def test_litellm_durations_are_accepted(text, seconds):
    settings = parse_retention_settings({"maximum_spend_logs_retention_period": text})
    assert settings.period == seconds and settings.interval == DAY


@pytest.mark.parametrize("bad", ["7 days", "0d", "-1h", "1mo", 7])
def test_a_duration_that_cannot_be_used_names_the_setting(bad):
    with pytest.raises(ValueError, match="maximum_spend_logs_retention_period"):
        parse_retention_settings({"maximum_spend_logs_retention_period": bad})


def test_unset_means_nothing_is_ever_deleted():
    assert parse_retention_settings({}) == RetentionSettings(period=None, interval=DAY)
    interval = parse_retention_settings({"maximum_spend_logs_retention_interval": "6h"})
    assert interval.period is None and interval.interval == 6 * 3600


async def test_rows_older_than_the_period_go_and_the_rest_stay(tmp_path, monkeypatch):
    monkeypatch.setattr(retention, "CHUNK", 7)  # many transactions, a partial last one
    path = str(tmp_path / "u.db")
    old = [record(NOW - 10 * DAY + 60 * i, i) for i in range(100)]  # a minute each
    recent = [record(NOW - 2 * DAY + i, 1000 + i) for i in range(30)]
    log = await written(path, old + recent)
    pruner = Pruner(RetentionSettings(period=7 * DAY), log, lambda now: None, clock=lambda: NOW)
    assert await pruner.run_once() == (100, 100 * 3)  # a minute row each for its key, team and user
    await log.stop()
    assert [r[0] for r in table(path, "SELECT request_id FROM usage_log ORDER BY id")] == [f"r{1000 + i}" for i in range(30)]
    assert table(path, "SELECT MIN(minute) FROM spend_minutes")[0][0] == int((NOW - 2 * DAY) / 60)
    # lifetime totals and the daily report are not the log's: they keep every row's spend
    assert table(path, "SELECT requests FROM spend_totals WHERE kind = 'key'") == [(130,)]
    assert table(path, "SELECT SUM(requests) FROM spend_daily") == [(130,)]
    assert pruner.pruned_rows == 100 and pruner.runs == 1


async def test_spend_minutes_of_an_open_budget_window_are_kept(tmp_path):
    """A 30-day budget window is rebuilt from its minutes after a restart: a 7-day period must
    not take them, though the usage rows themselves go."""
    path = str(tmp_path / "u.db")
    log = await written(path, [record(NOW - 20 * DAY, 1), record(NOW - 40 * DAY, 2)])
    window_start = NOW - 25 * DAY
    pruner = Pruner(RetentionSettings(period=7 * DAY), log, lambda now: window_start, clock=lambda: NOW)
    rows, minutes = await pruner.run_once()
    await log.stop()
    assert rows == 2 and minutes == 3  # only the minute from before the window (key, team, user)
    assert table(path, "SELECT COUNT(*) FROM usage_log") == [(0,)]
    kept = table(path, "SELECT DISTINCT minute FROM spend_minutes")
    assert kept == [(int((NOW - 20 * DAY) / 60),)]


async def test_rows_recorded_during_a_long_cleanup_are_all_written(tmp_path, monkeypatch):
    """The cleanup works in chunks between batches: usage keeps being written meanwhile."""
    monkeypatch.setattr(retention, "CHUNK", 50)
    path = str(tmp_path / "u.db")
    log = await written(path, [record(NOW - 30 * DAY + i, i) for i in range(5000)])
    pruner = Pruner(RetentionSettings(period=DAY), log, lambda now: None, clock=lambda: NOW)
    cleanup = asyncio.ensure_future(pruner.run_once())
    for i in range(300):
        log.record(record(NOW + i, 10_000 + i))
        await asyncio.sleep(0.001)
    minutes = len({int((NOW - 30 * DAY + i) / 60) for i in range(5000)})
    assert await cleanup == (5000, minutes * 3)
    await log.stop()
    assert log.written == 5300 and log.dropped == 0
    count, oldest = table(path, "SELECT COUNT(*), MIN(ts) FROM usage_log")[0]
    assert count == 300 and oldest == NOW


async def test_a_locked_database_fails_the_cleanup_and_loses_no_usage(tmp_path):
    path = str(tmp_path / "u.db")
    log = await written(path, [record(NOW - 30 * DAY, 1)])
    blocker = sqlite3.connect(path, isolation_level=None, timeout=0)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock longer than the writer waits
    pruner = Pruner(RetentionSettings(period=DAY), log, lambda now: None, clock=lambda: NOW)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            await asyncio.wait_for(pruner.run_once(), 30)
    finally:
        blocker.rollback()
        blocker.close()
    log.record(record(NOW, 2))
    assert await pruner.run_once() == (1, 3)  # the next run does it
    await log.stop()
    assert table(path, "SELECT request_id FROM usage_log") == [("r2",)]


async def test_the_pruner_runs_at_start_and_every_interval(tmp_path):
    path = str(tmp_path / "u.db")
    log = await written(path, [record(time.time() - 3 * DAY, 1)])
    pruner = Pruner(RetentionSettings(period=DAY, interval=0.05), log, lambda now: None)
    pruner.start()
    try:
        deadline = time.monotonic() + 10
        while pruner.runs < 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert pruner.runs >= 3 and pruner.pruned_rows == 1
        log.record(record(time.time() - 2 * DAY, 2))  # goes at the next run
        runs = pruner.runs
        while pruner.runs < runs + 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert pruner.pruned_rows == 2
    finally:
        await pruner.stop()
        await log.stop()


async def test_no_period_no_task(tmp_path):
    log = UsageLog(str(tmp_path / "u.db"))
    pruner = Pruner(RetentionSettings(), log, lambda now: None)
    pruner.start()
    assert pruner._task is None
    await pruner.stop()


async def test_stopping_the_log_ends_a_cleanup_under_way(tmp_path, monkeypatch):
    monkeypatch.setattr(retention, "CHUNK", 1)
    monkeypatch.setattr("fastgw.usage.log.CYCLE_BUDGET", 0.0)  # one chunk per cycle: it takes a while
    path = str(tmp_path / "u.db")
    log = await written(path, [record(NOW - 30 * DAY + i, i) for i in range(2000)])
    await asyncio.sleep(0.1)  # past the cycle that inserted them (it would delete twice as many)
    pruner = Pruner(RetentionSettings(period=DAY), log, lambda now: None, clock=lambda: NOW)
    cleanup = asyncio.ensure_future(pruner.run_once())
    await asyncio.sleep(0.2)
    await log.stop()
    with pytest.raises(RuntimeError, match="stopped"):
        await asyncio.wait_for(cleanup, 10)
    left = table(path, "SELECT COUNT(*) FROM usage_log")[0][0]
    assert 0 < left < 2000  # part done, the rest for the next start


async def test_the_cleanup_outpaces_rows_that_keep_arriving(tmp_path, monkeypatch):
    """On a saturated gateway rows are queued at every writer cycle; each cycle then deletes at
    least twice what it inserted, so the cleanup ends even with a tiny time share."""
    monkeypatch.setattr(retention, "CHUNK", 5)
    monkeypatch.setattr("fastgw.usage.log.CYCLE_BUDGET", 0.0)  # no time share: only the quota drives it
    path = str(tmp_path / "u.db")
    log = await written(path, [record(NOW - 30 * DAY + i, i) for i in range(3000)])
    await asyncio.sleep(0.1)
    pruner = Pruner(RetentionSettings(period=DAY), log, lambda now: None, clock=lambda: NOW)
    cleanup = asyncio.ensure_future(pruner.run_once())
    arrived = 0
    deadline = time.monotonic() + 5  # a chunk of 5 per cycle (100 cycles/s at most) would need 6 s
    while not cleanup.done() and time.monotonic() < deadline:
        for _ in range(50):
            log.record(record(NOW + arrived, 10_000 + arrived))
            arrived += 1
        await asyncio.sleep(0.01)
    left = table(path, f"SELECT COUNT(*) FROM usage_log WHERE ts < {NOW}")[0][0]
    assert cleanup.done(), f"{left} of 3000 old rows still there after 5 s"
    assert (await cleanup)[0] == 3000
    await log.stop()
    assert table(path, "SELECT COUNT(*) FROM usage_log") == [(arrived,)]
