"""Opening the gateway's SQLite file when several workers start at once.

Why this exists: every worker sets WAL mode and creates the tables on start-up. Switching
a fresh file to WAL needs an exclusive lock, and when two connections both hold a shared
lock and both want it, SQLite answers "database is locked" at once instead of waiting on
its busy timeout (waiting could deadlock). Seen in CI and reproduced here: two workers
starting on two busy cores, one worker failed start-up in one of eleven starts. So the set-up runs under an ``flock``
on a side file (serialising this host's workers) and is retried while another process
(an admin tool, an old instance) holds the database.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import time
import urllib.parse
from typing import Any, Callable, Iterator

SETUP_DEADLINE = 30.0  # seconds of "database is locked" tolerated before start-up fails


def lock_path(path: str) -> str:
    """The side file locked during set-up (not the database: closing another descriptor of the
    database file would drop SQLite's own POSIX locks held by this process)."""
    return os.path.abspath(path) + ".setup-lock"


@contextlib.contextmanager
def setup_lock(path: str) -> Iterator[None]:
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def _is_lock_error(exc: sqlite3.OperationalError) -> bool:
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def open_prepared(path: str, setup: Callable[[sqlite3.Connection], None], *, timeout: float = 1.0,
                  deadline: float = SETUP_DEADLINE, vfs: str | None = None,
                  **connect_args: Any) -> sqlite3.Connection:
    """Connect to ``path`` in WAL mode (through the SQLite VFS named ``vfs``, if given), run
    ``setup`` (schema statements) and commit.

    Returns the open connection. Lock errors are retried until ``deadline``; any other error
    is raised at once (a file that is not a database, a read-only directory...).
    """
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    give_up = time.monotonic() + deadline
    pause = 0.02
    with setup_lock(path):
        while True:
            db = sqlite3.connect(_uri(path, vfs), timeout=timeout, uri=True, **connect_args) if vfs \
                else sqlite3.connect(path, timeout=timeout, **connect_args)
            try:
                db.execute("PRAGMA journal_mode=WAL")
                setup(db)
                db.commit()
                return db
            except sqlite3.OperationalError as exc:
                db.close()
                if not _is_lock_error(exc) or time.monotonic() + pause > give_up:
                    raise
            except BaseException:
                db.close()
                raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)


def prepare(path: str, setup: Callable[[sqlite3.Connection], None], **kwargs: Any) -> None:
    """``open_prepared`` for callers that use their own connection afterwards (closed in this thread,
    as sqlite3 requires)."""
    open_prepared(path, setup, **kwargs).close()


def _uri(path: str, vfs: str) -> str:
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?vfs={urllib.parse.quote(vfs)}"
