"""Where the c=1 tail comes from: sequential requests, and when the slow ones happened (not a test).

A p99 from a few hundred probes says little about its cause; the times of the slow requests
do. Stalls that repeat with a fixed period point at periodic work (a flush, a timer, a
collection); scattered ones at the host. Runs one source tree against the mock, gateway on
the gateway core, this client (a uvloop protocol, about as quick as wrk) on the load core.

    python benchmarks/c1_stalls.py . [--n 20000] [--over-us 1000] [--direct | --floor] [--stream]

``--stream``: 100-chunk streams, timed to the first ``data:`` byte (time to first byte).
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
import ab  # noqa: E402
import mockdata  # noqa: E402
import probe  # noqa: E402
import run  # noqa: E402


async def sequential(port: int, path: str, body: bytes, keys: list[str], n: int,
                     stream: bool = False) -> tuple[list[float], list[float]]:
    """n requests one after another on one keep-alive connection, keys in turn (as wrk's script
    does); returns each request's start (seconds into the run) and latency (us)."""
    loop = asyncio.get_running_loop()
    _, proto = await loop.create_connection(probe.Probe, "127.0.0.1", port)
    requests = []
    for key in keys or [""]:
        head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json",
                f"Content-Length: {len(body)}"] + ([f"Authorization: Bearer {key}"] if key else [])
        requests.append(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    starts, latencies = [], []
    began = time.perf_counter()
    for i in range(n):
        proto.buf = bytearray()
        proto.first = None
        proto.stream = stream
        proto.done = loop.create_future()
        t0 = time.perf_counter()
        proto.transport.write(requests[i % len(requests)])
        end = await asyncio.wait_for(proto.done, 30)
        if not proto.buf.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"unexpected response {bytes(proto.buf[:200])!r}")
        starts.append(t0 - began)
        latencies.append(((proto.first if stream else end) - t0) * 1e6)
    proto.transport.close()
    return starts, latencies


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("tree", nargs="?", default=".")
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--over-us", type=float, default=1000.0, help="what counts as a slow request")
    parser.add_argument("--direct", action="store_true", help="the mock alone (is the tail the host's?)")
    parser.add_argument("--stream", action="store_true", help="streams, timed to the first data: byte")
    parser.add_argument("--floor", action="store_true",
                        help="the floor proxy on the gateway's core (is the tail that core's?)")
    args = parser.parse_args()
    run.pin(os.getpid(), run.LOAD_CORE)
    workdir = Path(tempfile.mkdtemp(prefix="fastgw-stalls-"))
    workdir.chmod(0o755)  # nginx workers read the mock's files
    mock, _ = run.start_mock("auto", workdir)
    gw = None
    try:
        body = mockdata.request_body("bench-stream", stream=True) if args.stream else mockdata.request_body("bench-chat")
        if args.direct:
            name, port, path, keys = "direct", mock.port, ("/sse" if args.stream else "/json") + "/v1/chat/completions", []
        elif args.floor:
            gw = run.start_floor(workdir, mock.port, "/sse" if args.stream else "/json")
            name, port, path, keys = "floor", gw.port, "/v1/chat/completions", []
        else:
            gw = ab.start_tree(args.tree, workdir, mock.port)
            key_file, _ = run.make_virtual_keys(gw.port, 100, workdir)
            name, port, path = args.tree, gw.port, "/v1/chat/completions"
            keys = key_file.read_text().split() if key_file else [run.MASTER_KEY]
        uvloop.run(sequential(port, path, body, keys, 2000, args.stream))  # warm-up
        starts, samples = uvloop.run(sequential(port, path, body, keys, args.n, args.stream))
        ordered = sorted(samples)
        pick = {q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] for q in (0.5, 0.99, 0.999)}
        slow = [(t, us) for t, us in zip(starts, samples) if us > args.over_us]
        print(f"{name}: p50 {pick[0.5]:.0f} us, p99 {pick[0.99]:.0f} us, p99.9 {pick[0.999]:.0f} us, "
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
