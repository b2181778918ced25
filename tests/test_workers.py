"""``fastgw serve --workers N`` spreads keep-alive connections over the workers (SO_REUSEPORT)."""
from __future__ import annotations

import http.client
import os
import signal
import sys
import time

import pytest

from fastgw import workers

pytestmark = pytest.mark.skipif(not workers.supported(), reason="SO_REUSEPORT load balancing is Linux-only")


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def _established_inodes(port: int) -> set[str]:
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local_port = int(fields[1].rsplit(":", 1)[1], 16)
            if local_port == port and fields[3] == "01":  # ESTABLISHED, server side
                inodes.add(fields[9])
    return inodes


def _connections_per_process(pids: list[int], port: int) -> dict[int, int]:
    inodes = _established_inodes(port)
    counts = {}
    for pid in pids:
        n = 0
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                try:
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                except OSError:
                    continue
                if target.startswith("socket:[") and target[8:-1] in inodes:
                    n += 1
        except OSError:
            pass
        counts[pid] = n
    return counts


def _workers_of(gw) -> list[int]:  # noqa: ANN001 - conftest Gateway
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pids = [p for p in _children(gw.proc.pid) if "resource_tracker" not in open(f"/proc/{p}/cmdline").read()]
        if len(pids) >= 2:
            return pids
        time.sleep(0.1)
    raise AssertionError("the workers did not start")


def test_keep_alive_connections_spread_over_workers(start_gateway) -> None:
    gw = start_gateway(None, workers=2)
    pids = _workers_of(gw)
    conns = []
    try:
        for _ in range(64):
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
            conn.request("GET", "/health/liveliness")
            response = conn.getresponse()
            response.read()
            assert response.status == 200
            conns.append(conn)
        counts = _connections_per_process(pids, gw.port)
        assert sum(counts.values()) == 64, counts
        # A hash of the address pair spreads 64 connections over 2 sockets: each worker gets
        # a fair share (the binomial odds of fewer than 12 are below 1e-6).
        assert min(counts.values()) >= 12, counts
    finally:
        for conn in conns:
            conn.close()


def test_a_dead_worker_is_replaced_and_sigterm_stops_all(start_gateway) -> None:
    gw = start_gateway(None, workers=2)
    pids = _workers_of(gw)
    os.kill(pids[0], signal.SIGKILL)
    deadline = time.monotonic() + 20
    replaced = []
    while time.monotonic() < deadline:
        current = [p for p in _children(gw.proc.pid) if p not in pids
                   and "resource_tracker" not in open(f"/proc/{p}/cmdline").read()]
        if current:
            replaced = current
            break
        time.sleep(0.1)
    assert replaced, "the supervisor did not start a new worker"
    # The gateway still answers on every connection.
    for _ in range(10):
        conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
        conn.request("GET", "/health/liveliness")
        assert conn.getresponse().status == 200
        conn.close()
    assert gw.stop() == 0
    for pid in pids[1:] + replaced:
        assert not os.path.exists(f"/proc/{pid}") or "Z" in open(f"/proc/{pid}/stat").read().split()[2]


def test_uvicorn_workers_remain_available(start_gateway) -> None:
    gw = start_gateway(None, workers=2, env={workers.MODE_ENV: "uvicorn"})
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=10)
    conn.request("GET", "/health/liveliness")
    assert conn.getresponse().status == 200
    conn.close()
    assert sys.platform.startswith("linux")
