"""Where the c=1 tail comes from: sequential requests, and when the slow ones happened (not a test).

A p99 from a few hundred probes says little about its cause; the times of the slow requests
do. Stalls that repeat with a fixed period point at periodic work (a flush, a timer, a
collection); scattered ones at the host. Runs one source tree against the mock, gateway on
the gateway core, this client on the load core.

    python benchmarks/c1_stalls.py . [--n 6000] [--over-us 1000] [--direct]
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # noqa: E402
import ab_latency  # noqa: E402
import mockdata  # noqa: E402
import run  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tree", nargs="?", default=".")
    parser.add_argument("--n", type=int, default=6000)
    parser.add_argument("--over-us", type=float, default=1000.0, help="what counts as a slow request")
    parser.add_argument("--direct", action="store_true", help="the mock alone (is the tail the host's?)")
    args = parser.parse_args()
    run.pin(os.getpid(), run.LOAD_CORE)
    workdir = Path(tempfile.mkdtemp(prefix="fastgw-stalls-"))
    workdir.chmod(0o755)  # nginx workers read the mock's files
    mock, _ = run.start_mock("auto", workdir)
    gw = None
    try:
        if args.direct:
            target = ab_latency.Target("direct", mock.port, "/json/v1/chat/completions", None)
        else:
            gw = ab.start_tree(args.tree, workdir, mock.port)
            keys, _ = run.make_virtual_keys(gw.port, 20, workdir)
            key = keys.read_text().split()[0] if keys else run.MASTER_KEY
            target = ab_latency.Target(args.tree, gw.port, "/v1/chat/completions", key)
        body = mockdata.request_body("bench-chat")
        for _ in range(500):
            target.once(body, False)
        target.samples.clear()
        began, starts = time.perf_counter(), []
        for _ in range(args.n):
            starts.append(time.perf_counter() - began)
            target.once(body, False)
        samples = target.samples
        ordered = sorted(samples)
        pick = {q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.99, 0.999)}
        slow = [(t, us) for t, us in zip(starts, samples) if us > args.over_us]
        print(f"{target.name}: p50 {pick[0.5]:.0f} us, p99 {pick[0.99]:.0f} us, p99.9 {pick[0.999]:.0f} us, "
              f"max {ordered[-1]:.0f} us; {len(slow)} of {len(samples)} over {args.over_us:.0f} us")
        print("slow requests (seconds into the run: microseconds):")
        print(" ".join(f"{t:.3f}:{us:.0f}" for t, us in slow[:100]))
    finally:
        if gw is not None:
            gw.stop()
        mock.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
