"""Interleaved c=1 latency of source trees and of the mock itself (not a test).

``ab.py`` measures each tree in turn, so a few seconds of host drift between two runs can
swamp a 20 us difference at c=1. Here every tree's gateway runs at once, all pinned to the
gateway core, and one client on the load core sends request i to target i mod k (the mock
directly, then each tree): at c=1 only one gateway is busy at a time, and drift hits every
target alike. Added latency = a tree's percentile minus the direct percentile.

Only the differences between trees mean something: gateways taking turns on one core evict
each other's cache lines, so every tree's absolute figures come out higher than in run.py
(measured: about 340 us added at p50 here against 250-320 us there, same code, same hour).

    python benchmarks/ab_latency.py /tmp/old . [--n 6000] [--stream]

Each tree must have its compiled core built in place (see ab.py).
"""
from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # noqa: E402
import mockdata  # noqa: E402
import run  # noqa: E402


class Target:
    def __init__(self, name: str, port: int, path: str, key: str | None) -> None:
        self.name = name
        self.conn = http.client.HTTPConnection("127.0.0.1", port)
        self.path = path
        self.headers = {"Content-Type": "application/json"}
        if key:
            self.headers["Authorization"] = f"Bearer {key}"
        self.samples: list[float] = []

    def once(self, body: bytes, stream: bool) -> None:
        """Whole response for a plain request; time to the first body bytes for a stream."""
        t0 = time.perf_counter()
        self.conn.request("POST", self.path, body=body, headers=self.headers)
        response = self.conn.getresponse()
        if stream:
            response.read1(1)
            elapsed = time.perf_counter() - t0
            response.read()
        else:
            response.read()
            elapsed = time.perf_counter() - t0
        if response.status != 200:
            raise RuntimeError(f"{self.name}: HTTP {response.status}")
        self.samples.append(elapsed * 1e6)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--n", type=int, default=6000, help="requests per target")
    parser.add_argument("--stream", action="store_true", help="time to first byte of 100-chunk streams")
    args = parser.parse_args()
    run.pin(__import__("os").getpid(), run.LOAD_CORE)
    workdir = Path(tempfile.mkdtemp(prefix="fastgw-ablat-"))
    workdir.chmod(0o755)  # nginx workers read the mock's files
    mock, _ = run.start_mock("auto", workdir)
    model = "bench-stream" if args.stream else "bench-chat"
    body = mockdata.request_body(model, stream=args.stream)
    mock_path = "/sse/v1/chat/completions" if args.stream else "/json/v1/chat/completions"
    gateways = []
    try:
        targets = [Target("direct", mock.port, mock_path, None)]
        for tree in args.trees:
            gw = ab.start_tree(tree, workdir, mock.port)
            gateways.append(gw)
            keys, _ = run.make_virtual_keys(gw.port, 20, workdir)
            key = keys.read_text().split()[0] if keys else run.MASTER_KEY
            targets.append(Target(tree, gw.port, "/v1/chat/completions", key))
        for _ in range(300):  # warm-up: connections, caches, the first budgeted requests
            for target in targets:
                target.once(body, args.stream)
        for target in targets:
            target.samples.clear()
        for _ in range(args.n):
            for target in targets:
                target.once(body, args.stream)
        direct = targets[0].samples
        what = "time to first byte" if args.stream else "c=1 latency"
        print(f"{what}, {args.n} requests per target, interleaved")
        for target in targets:
            s = target.samples
            p50, p90, p99 = (percentile(s, q) for q in (0.5, 0.9, 0.99))
            added = "" if target is targets[0] else (
                f" | added p50 {p50 - percentile(direct, 0.5):.0f} us, p99 {p99 - percentile(direct, 0.99):.0f} us")
            print(f"{target.name:14s} p50 {p50:.0f} us  p90 {p90:.0f} us  p99 {p99:.0f} us  "
                  f"mean {statistics.fmean(s):.0f} us{added}")
    finally:
        for gw in gateways:
            gw.stop()
        mock.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
