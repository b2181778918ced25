"""``fastgw serve --workers N`` on Linux: N processes, each with its own SO_REUSEPORT socket.

Why not uvicorn's ``--workers``: its workers accept from one shared listening socket, and
the kernel gives a burst of new connections to whichever worker is awake first. Clients
that keep connections alive (every SDK, every proxy in front of the gateway) can then all
land on one worker while the others idle: measured with 64 keep-alive connections, uvicorn
split them 64/0 in one run and 34/30 in another. With SO_REUSEPORT each worker listens on
its own socket and the kernel spreads connections across them by a hash of the address
pair, so the split is even whatever the timing (benchmarks/README.md).

The supervisor here keeps the port reserved (a bound, non-listening SO_REUSEPORT socket,
which receives no connections), starts the workers, restarts one that dies, and on
SIGINT/SIGTERM stops them all gracefully (each runs uvicorn's own shutdown).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

log = logging.getLogger("fastgw")

STARTUP_FAILURE = 3  # uvicorn's exit code when a worker cannot start
MODE_ENV = "FASTGW_WORKERS_MODE"  # "uvicorn": use uvicorn's shared-socket workers instead


def supported() -> bool:
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuseport_socket(host: str, port: int, listen: bool, backlog: int = 2048) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(backlog)
        sock.setblocking(False)
    return sock


def _worker(app: str, host: str, port: int, options: dict[str, Any]) -> None:
    import uvicorn

    sock = reuseport_socket(host, port, listen=True, backlog=options.get("backlog", 2048))
    config = uvicorn.Config(app, factory=True, host=host, port=port, **options)
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def run(app: str, host: str, port: int, workers: int, options: dict[str, Any]) -> int:
    """Serve ``app`` (an import string for a factory) with ``workers`` processes; returns an exit code."""
    reserve = reuseport_socket(host, port, listen=False)
    port = reserve.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    stop = threading.Event()

    def start(index: int) -> multiprocessing.process.BaseProcess:
        proc = ctx.Process(target=_worker, args=(app, host, port, options), name=f"fastgw-worker-{index}")
        proc.start()
        log.info("started worker %d (pid %s) on its own SO_REUSEPORT socket", index, proc.pid)
        return proc

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    procs = [start(i) for i in range(workers)]
    started_at = [time.monotonic()] * workers
    code = 0
    try:
        while not stop.wait(0.25):
            for index, proc in enumerate(procs):
                if proc.is_alive():
                    continue
                if proc.exitcode == STARTUP_FAILURE and time.monotonic() - started_at[index] < 60:
                    log.error("worker %d could not start; stopping", index)
                    code = STARTUP_FAILURE
                    stop.set()
                    break
                log.warning("worker %d (pid %s) exited with code %s; starting a new one", index, proc.pid,
                            proc.exitcode)
                procs[index] = start(index)
                started_at[index] = time.monotonic()
    finally:
        for proc in procs:
            if proc.is_alive():
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + float(options.get("timeout_graceful_shutdown") or 30) + 5
        for proc in procs:
            proc.join(max(0.1, deadline - time.monotonic()))
            if proc.is_alive():
                proc.kill()
                proc.join()
        reserve.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return code
