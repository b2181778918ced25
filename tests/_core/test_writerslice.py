"""The usage writer's time slices: the yielding SQLite VFS and the per-thread quantum."""
from __future__ import annotations

import math
import os
import sqlite3
import subprocess
import sys
import time
import urllib.parse

import _sqlite3
import pytest

from fastgw._core import writerslice
from threads import in_thread  # quanta are per thread

VFS = "fastgw-writerslice"  # the name the usage log registers (one per process)


@pytest.fixture
def vfs() -> str:
    assert writerslice.register(_sqlite3.__file__, VFS), "SQLite's VFS API was not found"
    return VFS


def connect(path: str, vfs: str) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{urllib.parse.quote(path)}?vfs={vfs}", uri=True, isolation_level=None)


def test_a_database_written_through_the_vfs_is_an_ordinary_sqlite_file(tmp_path, vfs):
    path = str(tmp_path / "odd name ?#%.db")
    db = connect(path, vfs)
    assert db.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    db.execute("CREATE TABLE t (x INTEGER PRIMARY KEY, y TEXT)")
    db.execute("BEGIN")
    db.executemany("INSERT INTO t (y) VALUES (?)", [(f"row {i}",) for i in range(20_000)])
    db.execute("COMMIT")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # reads the WAL, writes and syncs the file
    db.close()
    plain = sqlite3.connect(path)
    try:
        assert plain.execute("SELECT count(*), max(y) FROM t").fetchone() == (20_000, "row 9999")
        assert plain.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        plain.close()


def test_a_commit_yields_inside_its_file_writes_once_the_quantum_is_used(tmp_path, vfs):
    path = str(tmp_path / "u.db")

    def write(quantum: float) -> tuple[int, int]:
        writerslice.set_quantum(quantum)
        db = connect(path, vfs)
        db.execute("CREATE TABLE IF NOT EXISTS t (y TEXT)")
        db.execute("BEGIN")
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 200,) for _ in range(5000)])
        before = writerslice.vfs_yields()
        db.execute("COMMIT")  # one SQLite call: only the VFS can yield inside it
        after = writerslice.vfs_yields()
        db.close()
        return after - before, writerslice.quantum()

    yielded, quantum = in_thread(lambda: write(0.0))
    assert quantum == 0.0 and yielded > 50  # ~250 WAL frames written, each after a check
    yielded, quantum = in_thread(lambda: write(math.inf))
    assert quantum == math.inf and yielded == 0


def test_the_quantum_belongs_to_the_thread_that_set_it():
    writerslice.set_quantum(0.5)
    try:
        assert in_thread(writerslice.quantum) == math.inf  # a thread that never set one never yields
        assert writerslice.quantum() == 0.5
    finally:
        writerslice.set_quantum(math.inf)


def test_slice_check_yields_only_when_the_quantum_is_used():
    def checks(quantum: float) -> int:
        writerslice.set_quantum(quantum)
        writerslice.restart()
        before = writerslice.yields()
        for _ in range(100):
            assert writerslice.slice_check() is None  # SQLite's progress handler: never aborts
        return writerslice.yields() - before

    assert in_thread(lambda: checks(0.0)) == 100
    assert in_thread(lambda: checks(60.0)) == 0


def test_slice_check_as_progress_handler_never_aborts_a_statement(tmp_path, vfs):
    def run() -> int:
        writerslice.set_quantum(0.0)
        db = connect(str(tmp_path / "p.db"), vfs)
        db.set_progress_handler(writerslice.slice_check, 10)
        count = db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) "
                           "SELECT count(*) FROM n").fetchone()[0]
        db.close()
        return count

    assert in_thread(run) == 20_000


def test_registering_is_refused_without_sqlite_or_under_a_second_name(tmp_path, vfs):
    not_loaded = tmp_path / "libnothing.so"
    not_loaded.write_bytes(b"")
    script = ("import sys, _sqlite3; from fastgw._core import writerslice as w; "
              "print(w.register(sys.argv[1], 'x'), w.register(_sqlite3.__file__, 'x'))")
    out = subprocess.run([sys.executable, "-c", script, str(not_loaded)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]  # a library that is not loaded has no SQLite to find
    assert writerslice.register(_sqlite3.__file__, "fastgw-other") is False  # one VFS per process
    assert writerslice.register(_sqlite3.__file__, vfs) is True  # the same one again: fine


def test_on_a_saturated_core_the_quantum_grows_until_it_stops_yielding():
    """A yield that waits a whole scheduler slice (another busy process on the same core)
    doubles the quantum, until the thread stops yielding: yielding every few us there only
    gives its share away. A later ``set_quantum`` starts from the base again."""
    cpu = min(os.sched_getaffinity(0))
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        os.sched_setaffinity(hog.pid, {cpu})

        def on_the_hogs_core() -> tuple[float, float, float]:
            os.sched_setaffinity(0, {cpu})  # this thread only
            time.sleep(0.05)  # the hog runs
            writerslice.set_quantum(20e-6, math.inf)
            grown = []
            deadline = time.monotonic() + 5.0
            while writerslice.current() != math.inf and time.monotonic() < deadline:
                writerslice.slice_check()
                grown.append(writerslice.current())
            first = grown[0] if grown else 0.0
            writerslice.set_quantum(20e-6, math.inf)
            return first, writerslice.current(), max(g for g in grown if g != math.inf)

        _, reset, largest = in_thread(on_the_hogs_core)
        assert reset == pytest.approx(20e-6)  # set_quantum starts over
        assert largest > 20e-6 * 8  # it doubled several times before it stopped yielding
    finally:
        hog.kill()
        hog.wait()


def test_on_an_idle_core_the_quantum_stays_short():
    def alone() -> float:
        writerslice.set_quantum(20e-6, math.inf)
        end = time.monotonic() + 0.05
        while time.monotonic() < end:
            writerslice.slice_check()
        return writerslice.current()

    assert in_thread(alone) == pytest.approx(20e-6)
