"""The write-behind usage log: nothing recorded is lost, the request side never waits."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
import time

import msgspec
import pytest

from fastgw.usage import UsageRecord, rollup
from fastgw.usage.log import UsageLog
from fastgw.usage.priority import WRITER_NICE
from threads import in_thread


def rows(path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT request_id, cost, key_hash FROM usage_log ORDER BY id").fetchall()
    finally:
        con.close()


def record(i: int, **kw) -> UsageRecord:
    return UsageRecord(ts=1_700_000_000.0 + i, request_id=f"r{i}", endpoint="chat.completions", status=200,
                       key_hash="k1", model_group="g", provider="openai", cost=0.001, **kw)


def run(coro):
    return asyncio.run(coro)


def test_rows_are_written_in_order_with_rollups(tmp_path):
    path = str(tmp_path / "u.db")

    async def main():
        log = UsageLog(path, flush_interval=0.05, batch_size=7)
        await log.start()
        for i in range(100):
            log.record(record(i))
        await log.flush()
        assert log.queue_depth == 0 and log.written == 100
        await log.stop()

    run(main())
    assert [r[0] for r in rows(path)] == [f"r{i}" for i in range(100)]
    con = sqlite3.connect(path)
    spend, requests = con.execute("SELECT spend, requests FROM spend_totals WHERE kind = 'key' AND id = 'k1'").fetchone()
    con.close()
    assert requests == 100 and spend == pytest.approx(0.1)


def test_the_pricer_fills_rows_before_they_are_queued(tmp_path):
    path = str(tmp_path / "u.db")

    async def main():
        log = UsageLog(path, flush_interval=0.05)
        log.pricer = lambda row: setattr(row, "cost", 0.5)
        await log.start()
        row = record(1)
        row.cost = None
        log.record(row)
        await log.stop()

    run(main())
    assert rows(path)[0][1] == 0.5


def test_stop_writes_everything_recorded(tmp_path):
    path = str(tmp_path / "u.db")

    async def main():
        log = UsageLog(path, flush_interval=60.0)  # only the shutdown flush can write these
        await log.start()
        for i in range(1234):
            log.record(record(i))
        await log.stop()
        assert log.written == 1234 and log.dropped == 0

    run(main())
    assert len(rows(path)) == 1234


def test_rows_the_last_flush_writes_after_the_wait_are_not_counted_as_dropped(tmp_path):
    """stop() gives up waiting after ``timeout``, but the writer's final flush may still write
    the rows: only what is unwritten once the writer has stopped is dropped."""
    path = str(tmp_path / "u.db")

    async def main():
        log = UsageLog(path, flush_interval=60.0)
        await log.start()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the file for 1.5 s
        asyncio.get_running_loop().call_later(1.5, blocker.rollback)
        for i in range(50):
            log.record(record(i))
        await log.stop(timeout=0.5)
        blocker.close()
        assert (log.written, log.dropped) == (50, 0)

    run(main())
    assert len(rows(path)) == 50


def test_a_full_queue_drops_and_counts(tmp_path, caplog):
    path = str(tmp_path / "u.db")

    async def main():
        log = UsageLog(path, queue_size=10, flush_interval=60.0)
        await log.start()
        for i in range(15):
            log.record(record(i))
        assert log.dropped == 5 and log.queue_depth == 10
        await log.stop()
        return log

    log = run(main())
    assert len(rows(path)) == 10 and log.dropped == 5
    assert "usage log queue full" in caplog.text


def test_a_locked_database_keeps_rows_until_it_is_free(tmp_path):
    path = str(tmp_path / "u.db")

    async def main():
        log = UsageLog(path, flush_interval=0.02)
        await log.start()
        blocker = sqlite3.connect(path, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        for i in range(20):
            log.record(record(i))
        for _ in range(300):
            if log.write_errors:
                break
            await asyncio.sleep(0.01)
        assert log.write_errors and log.last_error and not log.healthy()
        assert log.queue_depth == 20
        blocker.rollback()
        blocker.close()
        await asyncio.wait_for(log.flush(), 15)
        assert log.healthy() and log.written == 20
        await log.stop()

    run(main())
    assert len(rows(path)) == 20


def test_a_deleted_database_is_recreated(tmp_path):
    path = str(tmp_path / "u.db")

    async def main():
        log = UsageLog(path, flush_interval=0.02)
        await log.start()
        log.record(record(0))
        await log.flush()
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
        log.record(record(1))
        await asyncio.wait_for(log.flush(), 10)
        await log.stop()

    run(main())
    assert [r[0] for r in rows(path)] == ["r1"]


def test_recording_never_blocks_on_a_slow_writer(tmp_path):
    """record() only appends: while the writer is stuck on a lock, the loop keeps going."""
    path = str(tmp_path / "u.db")

    async def main():
        log = UsageLog(path, flush_interval=0.01)
        await log.start()
        blocker = sqlite3.connect(path, timeout=0)
        blocker.execute("BEGIN EXCLUSIVE")
        ticks = 0

        async def ticker():
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        for i in range(5000):
            log.record(record(i))
        await asyncio.sleep(0.3)
        task.cancel()
        assert ticks > 50
        blocker.rollback()
        blocker.close()
        await log.stop()
        assert log.written == 5000

    run(main())


def thread_policy_and_nice(tid: int) -> tuple[int, int]:
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()  # fields[0] is stat field 3
    return int(fields[38]), int(fields[16])  # policy (field 41), nice (field 19)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux-only")
def test_the_writer_thread_runs_idle_only_or_niced(tmp_path):
    caller = thread_policy_and_nice(threading.get_native_id())

    async def main():
        log = UsageLog(str(tmp_path / "u.db"), flush_interval=0.01)
        await log.start()
        await asyncio.sleep(0.05)
        assert log._thread is not None and log._thread.native_id is not None
        seen = thread_policy_and_nice(log._thread.native_id)
        await log.stop()
        return seen, log.priority.can_idle

    (policy, nice), can_idle = run(main())
    assert policy == (os.SCHED_IDLE if can_idle else os.SCHED_OTHER) and nice == WRITER_NICE
    assert thread_policy_and_nice(threading.get_native_id()) == caller  # the caller is untouched


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities are Linux-only")
def test_a_backlog_lifts_an_idle_only_writer_from_the_event_loop(tmp_path):
    async def main():
        log = UsageLog(str(tmp_path / "u.db"), flush_interval=60.0)  # the writer sleeps through the test
        await log.start()
        await asyncio.sleep(0.05)
        if not log.priority.can_idle:
            await log.stop()
            return None
        log.priority.high = 5
        assert thread_policy_and_nice(log._thread.native_id)[0] == os.SCHED_IDLE
        for i in range(6):
            log.record(UsageRecord(ts=time.time(), request_id=f"r{i}", endpoint="chat.completions", status=200))
        lifted = thread_policy_and_nice(log._thread.native_id), log.priority.switches
        await log.stop()
        return lifted

    lifted = run(main())
    if lifted is None:
        pytest.skip("this user cannot leave SCHED_IDLE: the writer never enters it")
    assert lifted == ((os.SCHED_OTHER, WRITER_NICE), 1)


def expected_rollups(records: list[UsageRecord]) -> tuple[dict, dict, dict]:
    """The rollups computed the slow, obvious way (the oracle for the SQL)."""
    import math
    import time as _time

    daily: dict[tuple, list] = {}
    totals: dict[tuple, list] = {}
    minutes: dict[tuple, list] = {}
    for r in records:
        for kind, v in (("key", r.key_hash), ("team", r.team_id), ("user", r.user_id)):
            if v:
                spent = minutes.setdefault((math.floor(r.ts / 60), kind, v), [0.0, 0])
                spent[0] += r.cost or 0.0
                spent[1] += 1
        sums = [r.cost or 0.0, 1, 1 if r.unpriced else 0, r.prompt_tokens, r.completion_tokens]
        day = _time.strftime("%Y-%m-%d", _time.gmtime(r.ts))
        group = (day, r.key_hash or "", r.team_id or "", r.user_id or "", r.model_group or "", r.provider or "")
        for target, key in [(daily, group)] + [(totals, (kind, v)) for kind, v in
                                                (("key", r.key_hash), ("team", r.team_id), ("user", r.user_id)) if v]:
            current = target.setdefault(key, [0.0, 0, 0, 0, 0])
            for i, value in enumerate(sums):
                current[i] += value
    return daily, totals, minutes


def stored_rollups(path) -> tuple[dict, dict, dict]:
    con = sqlite3.connect(path)
    try:
        daily = {tuple(r[:6]): list(r[6:]) for r in con.execute("SELECT * FROM spend_daily")}
        totals = {tuple(r[:2]): list(r[2:]) for r in con.execute("SELECT * FROM spend_totals")}
        minutes = {tuple(r[:3]): list(r[3:]) for r in con.execute("SELECT * FROM spend_minutes")}
    finally:
        con.close()
    return daily, totals, minutes


def varied_records(n: int) -> list[UsageRecord]:
    import random

    rng = random.Random(7)
    out = []
    for i in range(n):
        unpriced = rng.random() < 0.1
        out.append(UsageRecord(
            ts=1_700_000_000.0 + rng.randrange(0, 3 * 86400), request_id=f"v{i}", endpoint="chat.completions",
            status=200, key_hash=rng.choice(["k1", "k2", "k3", None]), team_id=rng.choice(["t1", "t2", None]),
            user_id=rng.choice(["u1", None, None]), model_group=rng.choice(["a", "b"]),
            provider=rng.choice(["openai", "anthropic", None]), prompt_tokens=rng.randrange(0, 5000),
            completion_tokens=rng.randrange(0, 900), unpriced=unpriced,
            cost=None if unpriced else round(rng.random() / 100, 9)))
    return out


def write_all(path: str, records: list[UsageRecord], flush_interval: float = 0.01) -> None:
    """Record every row through a started log, then stop it (which writes what is left)."""
    async def main():
        log = UsageLog(path, flush_interval=flush_interval)
        await log.start()
        for r in records:
            log.record(r)
        await log.stop()

    run(main())


def assert_rollups_match(path: str, records: list[UsageRecord]) -> None:
    for want, got in zip(expected_rollups(records), stored_rollups(path)):
        assert got.keys() == want.keys()
        for key, sums in want.items():
            assert got[key][0] == pytest.approx(sums[0]) and got[key][1:] == sums[1:], key


def test_rollups_match_the_rows_across_batches(tmp_path):
    path = str(tmp_path / "u.db")
    records = varied_records(1500)

    async def main():
        log = UsageLog(path, flush_interval=0.01, batch_size=50)
        await log.start()
        for i, r in enumerate(records):
            log.record(r)
            if i % 400 == 0:
                await log.flush()  # several transactions, each folding only its own rows
        await log.stop()

    run(main())
    assert_rollups_match(path, records)


def written_as_older_schema(path: str, records: list[UsageRecord], *statements: str) -> None:
    """The rows written by the log, then the schema taken back to an older one by ``statements``."""
    write_all(path, records)
    con = sqlite3.connect(path)
    for statement in statements:
        con.execute(statement)
    con.commit()
    con.close()


def test_rollups_are_backfilled_for_a_database_that_predates_them(tmp_path):
    path = str(tmp_path / "u.db")
    records = varied_records(300)
    written_as_older_schema(path, records, "DROP TABLE spend_daily", "DROP TABLE spend_totals")
    async def reopen():
        log = UsageLog(path)
        await log.start()  # creates the rollups and fills them from the rows
        await log.stop()

    run(reopen())
    want_daily, want_totals, want_minutes = expected_rollups(records)
    got_daily, got_totals, got_minutes = stored_rollups(path)
    assert got_daily.keys() == want_daily.keys() and got_totals.keys() == want_totals.keys()
    assert all(got_totals[k][1:] == v[1:] for k, v in want_totals.items())
    assert {k: v[1] for k, v in got_minutes.items()} == {k: v[1] for k, v in want_minutes.items()}, \
        "a rollup that existed is not filled again (counted twice)"


def test_a_database_from_before_spend_minutes_gets_them_and_loses_the_scope_indexes(tmp_path):
    """The migration of a database written before ``spend_minutes``: the rollup is filled from
    the rows once, and the per-row indexes by key, team and user are dropped."""
    path = str(tmp_path / "u.db")
    records = varied_records(400)
    written_as_older_schema(
        path, records, "DROP TABLE spend_minutes",
        "CREATE INDEX usage_log_key_ts ON usage_log (key_hash, ts)",
        "CREATE INDEX usage_log_team_ts ON usage_log (team_id, ts) WHERE team_id IS NOT NULL",
        "CREATE INDEX usage_log_user_ts ON usage_log (user_id, ts) WHERE user_id IS NOT NULL")
    more = varied_records(450)[400:]
    for i, r in enumerate(more):
        r.request_id = f"after{i}"
    write_all(path, more)  # the reopened log backfills, then keeps the rollup with new rows
    assert_rollups_match(path, records + more)
    con = sqlite3.connect(path)
    try:
        indexes = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    finally:
        con.close()
    assert not indexes & {"usage_log_key_ts", "usage_log_team_ts", "usage_log_user_ts"}
    assert "spend_minutes_scope" in indexes


def test_two_writers_on_one_database_never_count_a_row_twice(tmp_path):
    """``--workers N`` runs N writers on one file. Writer B tries to commit its batch while
    writer A is inside its transaction: each writer's rollups are its own rows, so however the
    two interleave, every row is summed exactly once."""
    path = str(tmp_path / "u.db")
    first, second = varied_records(200)[:100], varied_records(200)[100:]

    async def main():
        a, b = UsageLog(path, flush_interval=60), UsageLog(path, flush_interval=60)
        await a.start()
        await b.start()
        assert a._db is not None and b._db is not None
        b._db.execute("PRAGMA busy_timeout = 50")
        b_tried: list[bool] = []

        def between_statements(sql: str) -> None:
            if sql.startswith("INSERT INTO spend_daily") and not b_tried:
                b._pending = list(map(msgspec.structs.astuple, second))  # B's writer flushes now
                b_tried.append(b._write_pending())  # locked out by A: B keeps its rows

        a._db.set_trace_callback(between_statements)
        for r in first:
            a.record(r)
        await a.flush()
        a._db.set_trace_callback(None)
        assert b_tried == [False], "the interleaving under test did not happen"
        await a.stop()
        await b.stop()  # B's last flush writes the rows it kept

    run(main())
    assert len(rows(path)) == 200
    assert_rollups_match(path, first + second)


def test_rollups_fold_each_batch_exactly_once_across_workers(tmp_path):
    """Two writers alternate batches on one file: the rollups equal the rows, summed once."""
    path = str(tmp_path / "u.db")
    records = varied_records(600)

    async def main():
        writers = [UsageLog(path, flush_interval=0.01, batch_size=20), UsageLog(path, flush_interval=0.01, batch_size=20)]
        for w in writers:
            await w.start()
        for i, r in enumerate(records):
            writers[(i // 37) % 2].record(r)
            if i % 50 == 0:
                await asyncio.sleep(0.005)
        for w in writers:
            await w.stop()

    run(main())
    assert len(rows(path)) == 600
    assert_rollups_match(path, records)


def test_the_writer_hands_the_core_back_inside_a_batch_and_inside_its_commit(tmp_path, monkeypatch):
    """Row building, statements (SQLite's progress handler) and the COMMIT (the yielding VFS's
    file writes) all check the writer's time slice; a check that yields aborts nothing."""
    from fastgw._core import writerslice
    from fastgw.usage import log as usage_log_module

    monkeypatch.setattr(usage_log_module, "QUANTUM_IDLE", 0.0)
    monkeypatch.setattr(usage_log_module, "QUANTUM_NICED", 0.0)
    path = str(tmp_path / "u.db")
    yields, vfs_yields = writerslice.yields(), writerslice.vfs_yields()
    write_all(path, varied_records(300), flush_interval=60)  # one flush, at stop
    assert len(rows(path)) == 300
    assert writerslice.yields() - yields > 2 * 300 // usage_log_module.YIELD_CHECK_ROWS  # taking and inserting
    assert writerslice.vfs_yields() - vfs_yields > 5, "the COMMIT's file writes yield too"
    assert_rollups_match(path, varied_records(300))


def test_the_writer_quantum_is_short_when_idle_only_and_long_when_niced(tmp_path):
    from fastgw._core import writerslice
    from fastgw.usage import log as usage_log_module

    log = UsageLog(str(tmp_path / "u.db"))

    def quantum(idle: bool) -> float:
        log.priority.idle = idle
        log._set_quantum()  # in the writer thread: quanta are per thread
        return writerslice.quantum()

    got = {idle: in_thread(lambda idle=idle: quantum(idle)) for idle in (True, False)}
    assert got == {True: usage_log_module.QUANTUM_IDLE, False: usage_log_module.QUANTUM_NICED}
    assert usage_log_module.QUANTUM_IDLE < usage_log_module.QUANTUM_NICED


def test_without_the_yielding_vfs_the_writer_still_writes(tmp_path, monkeypatch, caplog):
    """An SQLite whose VFS API cannot be reached (linked in statically, symbols hidden): the
    writer opens the file directly and yields only between and inside statements."""
    from fastgw._core import writerslice

    monkeypatch.setattr(writerslice, "register", lambda library, name: False)
    path = str(tmp_path / "u.db")
    write_all(path, varied_records(100))
    assert len(rows(path)) == 100
    assert "COMMITs will not yield" in caplog.text


@pytest.fixture
def counting_adapters():
    """Adapters for None and bool that record each call (sqlite3's registry is process-wide:
    removed again afterwards)."""
    calls: list[str] = []
    keys = [(type(None), sqlite3.PrepareProtocol), (bool, sqlite3.PrepareProtocol)]
    assert not any(key in sqlite3.adapters for key in keys)
    sqlite3.register_adapter(type(None), lambda value: calls.append("None"))
    sqlite3.register_adapter(bool, lambda value: calls.append("bool") or int(value))
    try:
        yield calls
    finally:
        for key in keys:
            sqlite3.adapters.pop(key, None)


def test_values_round_trip_exactly_without_sqlite3_adapting_any(tmp_path, counting_adapters):
    """None and bool values are bound as SQLite stores them (fastgw/_core/usagerows.pyx), not
    through sqlite3's adapter registry: an adapter registered for their types is never called.
    Empty and "0" strings stay strings; None stays NULL."""
    path = str(tmp_path / "u.db")
    plain = record(1, stream=True, retried=False)  # key_alias, team_id, ttft_ms ... None
    plain.cost = None
    odd = record(2, key_alias="", team_id="0", fallback="g2", ttft_ms=0.0, cache_hit=True, error_type="x")

    async def main():
        log = UsageLog(path, flush_interval=0.05)
        await log.start()
        log.record(plain)
        log.record(odd)
        await log.stop()

    run(main())
    assert counting_adapters == []
    con = sqlite3.connect(path)
    got = con.execute("SELECT key_alias, team_id, user_id, fallback, ttft_ms, cost, stream, retried, cache_hit, "
                      "error_type, typeof(key_alias), typeof(team_id), typeof(cost) FROM usage_log ORDER BY id").fetchall()
    con.close()
    assert got[0] == (None, None, None, None, None, None, 1, 0, 0, None, "null", "null", "null")
    assert got[1] == ("", "0", None, "g2", 0.0, 0.001, 0, 0, 1, "x", "text", "text", "real")
