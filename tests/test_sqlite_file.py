"""Opening the SQLite file from several workers at once (fastgw/sqlite_file.py)."""
from __future__ import annotations

import multiprocessing
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from fastgw import sqlite_file

ROUNDS = 8
PROCESSES = 6


def _setup(db: sqlite3.Connection) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)")
    db.execute("CREATE INDEX IF NOT EXISTS t_v ON t (v)")


def _open_and_write(path: str, barrier, results) -> None:
    barrier.wait()
    try:
        db = sqlite_file.open_prepared(path, _setup, timeout=1.0)
        db.execute("INSERT INTO t (v) VALUES ('x')")
        db.commit()
        mode = db.execute("PRAGMA journal_mode").fetchone()[0]
        db.close()
        results.put(mode)
    except Exception as exc:  # reported to the test, which fails on it
        results.put(f"{type(exc).__name__}: {exc}")


def test_processes_starting_together_all_open_a_fresh_file(tmp_path: Path):
    ctx = multiprocessing.get_context("fork")
    for round_ in range(ROUNDS):
        path = str(tmp_path / f"r{round_}" / "usage.db")
        barrier, results = ctx.Barrier(PROCESSES), ctx.Queue()
        procs = [ctx.Process(target=_open_and_write, args=(path, barrier, results)) for _ in range(PROCESSES)]
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=60) for _ in procs]
        for p in procs:
            p.join(10)
        assert outcomes == ["wal"] * PROCESSES, outcomes
        db = sqlite3.connect(path)
        assert db.execute("SELECT count(*) FROM t").fetchone()[0] == PROCESSES
        db.close()


def _hold_exclusive(path: str, seconds: float, started: threading.Event) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    started.set()
    time.sleep(seconds)
    db.execute("COMMIT")
    db.close()


def _rollback_journal_file(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE old (x)")
    db.commit()
    db.close()


def test_waits_for_another_process_holding_the_database(tmp_path: Path):
    path = tmp_path / "usage.db"
    _rollback_journal_file(path)  # not yet WAL: switching needs the exclusive lock
    started = threading.Event()
    holder = threading.Thread(target=_hold_exclusive, args=(str(path), 1.5, started))
    holder.start()
    started.wait(5)
    t0 = time.monotonic()
    db = sqlite_file.open_prepared(str(path), _setup, timeout=0.1)
    waited = time.monotonic() - t0
    holder.join()
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert waited >= 1.0  # it outlasted its own 0.1 s busy timeout by retrying
    db.close()


def test_gives_up_on_a_lock_held_past_the_deadline(tmp_path: Path):
    path = tmp_path / "usage.db"
    _rollback_journal_file(path)
    started = threading.Event()
    holder = threading.Thread(target=_hold_exclusive, args=(str(path), 2.0, started))
    holder.start()
    started.wait(5)
    try:
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            sqlite_file.open_prepared(str(path), _setup, timeout=0.1, deadline=0.5)
    finally:
        holder.join()


def test_other_errors_are_raised_at_once(tmp_path: Path):
    path = tmp_path / "not-a-database.db"
    path.write_bytes(b"this is a text file, not SQLite" * 100)
    t0 = time.monotonic()
    with pytest.raises(sqlite3.DatabaseError, match="not a database"):
        sqlite_file.open_prepared(str(path), _setup)
    assert time.monotonic() - t0 < sqlite_file.SETUP_DEADLINE / 10


def test_setup_lock_serialises_holders(tmp_path: Path):
    path = str(tmp_path / "usage.db")
    order: list[str] = []
    inside = threading.Event()

    def first() -> None:
        with sqlite_file.setup_lock(path):
            inside.set()
            time.sleep(0.3)
            order.append("first out")

    thread = threading.Thread(target=first)
    thread.start()
    inside.wait(5)
    with sqlite_file.setup_lock(path):  # flock on separate descriptors excludes within a process too
        order.append("second in")
    thread.join()
    assert order == ["first out", "second in"]
