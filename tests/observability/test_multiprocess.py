"""Multiprocess mode plumbing: a fresh directory per run, dead workers' live gauges dropped."""
from __future__ import annotations

import os
import subprocess
import sys

from fastgw.observability import multiprocess


def isolate_env(monkeypatch) -> None:
    """Whatever prepare_for_workers exports is undone after the test."""
    monkeypatch.setenv(multiprocess.ENV, "placeholder")
    monkeypatch.delenv(multiprocess.ENV)


def test_single_worker_needs_no_directory(monkeypatch):
    isolate_env(monkeypatch)
    assert multiprocess.prepare_for_workers(1) is None and multiprocess.ENV not in os.environ


def test_fresh_directory_for_workers_and_abandoned_ones_removed(monkeypatch, tmp_path):
    monkeypatch.setattr(multiprocess.tempfile, "gettempdir", lambda: str(tmp_path))
    monkeypatch.setattr(multiprocess.tempfile, "tempdir", str(tmp_path))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    abandoned = tmp_path / f"fastgw-metrics-{dead.stdout.strip()}-x"
    abandoned.mkdir()
    mine = tmp_path / f"fastgw-metrics-{os.getpid()}-y"
    mine.mkdir()
    isolate_env(monkeypatch)
    path = multiprocess.prepare_for_workers(2)
    try:
        assert os.environ[multiprocess.ENV] == path and os.path.isdir(path) and not os.listdir(path)
        assert not abandoned.exists() and mine.exists()
    finally:
        multiprocess.remove_dir(path)
    assert not os.path.exists(path)


def test_dead_workers_live_gauges_are_dropped(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout.strip())
    for name in (f"gauge_livesum_{dead_pid}.db", f"gauge_livesum_{os.getpid()}.db", f"counter_{dead_pid}.db"):
        (tmp_path / name).write_bytes(b"")
    multiprocess.mark_dead_workers(str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == sorted([f"gauge_livesum_{os.getpid()}.db", f"counter_{dead_pid}.db"])
