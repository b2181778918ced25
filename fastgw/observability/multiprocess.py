"""Prometheus multiprocess mode for ``fastgw serve --workers N``.

prometheus-client picks its value storage when it is first imported, from the
``PROMETHEUS_MULTIPROC_DIR`` environment variable, so ``fastgw serve`` sets it before any
worker starts. Each run gets a fresh directory (stale files from an earlier run would
add old counts); directories left by runs whose process is gone are removed at the
next start, since a signal-terminated server never runs its own clean-up.
"""
from __future__ import annotations

import glob
import os
import re
import shutil
import tempfile
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

ENV = "PROMETHEUS_MULTIPROC_DIR"
_DIR_PREFIX = "fastgw-metrics-"
_LIVE_GAUGE_FILE = re.compile(r"^gauge_live\w*?_(\d+)\.db$")


def multiprocess_dir() -> str | None:
    path = os.environ.get(ENV)
    return path if path and os.path.isdir(path) else None


def prepare_for_workers(workers: int) -> str | None:
    """Create and export a fresh metrics directory when more than one worker will run."""
    if workers <= 1:
        return None
    _remove_abandoned_dirs()
    path = tempfile.mkdtemp(prefix=f"{_DIR_PREFIX}{os.getpid()}-")
    os.environ[ENV] = path
    return path


def remove_dir(path: str | None) -> None:
    if path:
        shutil.rmtree(path, ignore_errors=True)


def _remove_abandoned_dirs() -> None:
    for path in glob.glob(os.path.join(tempfile.gettempdir(), f"{_DIR_PREFIX}*")):
        owner = os.path.basename(path)[len(_DIR_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not pid_alive(int(owner)):
            shutil.rmtree(path, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def mark_dead_workers(path: str) -> None:
    """Drop the live gauges (in-flight, queue depth) of workers that died without saying so."""
    from prometheus_client import multiprocess

    dead = set()
    for name in os.listdir(path):
        match = _LIVE_GAUGE_FILE.match(name)
        if match and not pid_alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in dead:
        multiprocess.mark_process_dead(pid, path)


def mark_this_worker_dead() -> None:
    path = multiprocess_dir()
    if path:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid(), path)


def render_latest(own_registry: "CollectorRegistry") -> bytes:
    """The exposition for ``/metrics``: merged across workers in multiprocess mode."""
    from prometheus_client import CollectorRegistry, generate_latest, multiprocess

    path = multiprocess_dir()
    if path is None:
        return generate_latest(own_registry)
    mark_dead_workers(path)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path)
    return generate_latest(registry)
