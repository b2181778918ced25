"""Interleaved A/B of two source trees under the `make bench` harness (not a test).

This VM's speed drifts by tens of percent within a day, so "before" and "after" figures from
different runs do not compare. This runs both trees against the same mock with the same
pinning, alternating, so drift hits both equally. Each tree must have its compiled core built
in place (``cythonize -i fastgw/_core/*.pyx``); an old commit can be checked out with
``git worktree add /tmp/old <commit>``.

    python benchmarks/ab.py /tmp/old . [--rounds 2] [--duration 4] [--c1-only [--conns N] [--mock-delay-ms D]]

``--c1-only``: one wrk -c1 run per tree and round (after a c=16 warm-up), the trees' order
reversed every other round, and the medians per tree at the end; each round starts with a
run straight to the mock (``direct``, the mock on the load core). For questions about the
c=1 tail, where more rounds beat more kinds of load. ``ab_latency.py`` cannot answer those
that involve the usage writer: it runs every tree's gateway on the one core at once, so each
writer fills the others' idle time too (measured: a tree without a writer had the same c=1
p99 there, and a 30-55% lower one here, in four runs of 4-6 rounds). With ``--conns N`` that
run has N connections instead of one; with ``--mock-delay-ms D`` the upstream is the built-in
mock answering D ms after each request (as a model would) instead of nginx answering at once.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mockdata  # noqa: E402
import run  # noqa: E402


def start_tree(tree: str, workdir: Path, mock_port: int) -> run.Proc:
    port = run.free_port()
    env = dict(os.environ, FASTGW_UPSTREAM_CLIENT="fast", PYTHONUNBUFFERED="1", PYTHONPATH=str(Path(tree).resolve()))
    config = run.gateway_config(workdir, mock_port)
    return run.start(f"gw-{len(list(workdir.glob('gw-*.log')))}", [run.PY, "-m", "fastgw", "serve", "--config",
                     str(config), "--port", str(port), "--log-level", "warning"], workdir, run.GATEWAY_CORE,
                     env=env, port=port)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("trees", nargs="+")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--probes", type=int, default=300)
    parser.add_argument("--c1-only", action="store_true", help="only c=1, more rounds (see the module doc)")
    parser.add_argument("--conns", type=int, default=1, help="with --c1-only: connections of that run")
    parser.add_argument("--mock-delay-ms", type=float, default=0.0, help="with --c1-only: the upstream's delay")
    args = parser.parse_args()
    if args.c1_only:
        return c1_only(args.trees, args.rounds, args.duration, args.conns, args.mock_delay_ms)
    workdir = Path(tempfile.mkdtemp(prefix="fastgw-ab-"))
    workdir.chmod(0o755)  # nginx workers read the mock's files
    mock, _ = run.start_mock("auto", workdir)
    bodies = run.Bodies(workdir / "chat.json", workdir / "stream.json")
    bodies.chat.write_bytes(mockdata.request_body("bench-chat"))
    bodies.stream.write_bytes(mockdata.request_body("bench-stream", stream=True))
    try:
        for _ in range(args.rounds):
            for tree in args.trees:
                gw = start_tree(tree, workdir, mock.port)
                try:
                    keys, _ = run.make_virtual_keys(gw.port, 100, workdir)
                    url = f"http://127.0.0.1:{gw.port}/v1/chat/completions"
                    row = run.measure_target(tree, url, url, bodies, args.duration, args.probes, keys=keys, pid=gw.pid)
                finally:
                    gw.stop()
                ttfb = row.ttfb["ttfb_p50_us"] if row.ttfb else float("nan")
                print(f"{tree:14s} c1 p50 {row.c1['p50_us']} us p99 {row.c1['p99_us']} us | c64 {row.c64['rps']:.0f} "
                      f"req/s p99 {row.c64['p99_us'] / 1000:.1f} ms, CPU {row.cpu_per_request_us:.0f} us/req | streams "
                      f"{row.streams['rps']:.0f}/s, CPU {row.cpu_per_stream_us:.0f} us/stream | TTFB p50 {ttfb:.0f} us",
                      flush=True)
    finally:
        mock.stop()
    return 0


def c1_only(trees: list[str], rounds: int, duration: float, conns: int = 1, delay_ms: float = 0.0) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="fastgw-ab-"))
    workdir.chmod(0o755)  # nginx workers read the mock's files
    mock, _ = run.start_mock("builtin" if delay_ms else "auto", workdir, delay_ms)
    body = workdir / "chat.json"
    body.write_bytes(mockdata.request_body("bench-chat"))
    results: dict[str, list[dict]] = {"direct": [], **{tree: [] for tree in trees}}
    try:
        for index in range(rounds):
            direct = run.wrk(f"http://127.0.0.1:{mock.port}/json/v1/chat/completions", body, conns, duration)
            results["direct"].append(direct)
            print(f"{'direct':14s} c={conns} p50 {direct['p50_us']} us p90 {direct['p90_us']} us p99 {direct['p99_us']} us",
                  flush=True)
            for tree in trees if index % 2 == 0 else trees[::-1]:
                gw = start_tree(tree, workdir, mock.port)
                try:
                    keys, _ = run.make_virtual_keys(gw.port, 100, workdir)
                    url = f"http://127.0.0.1:{gw.port}/v1/chat/completions"
                    run.wrk(url, body, 16, 2.0, keys=keys)
                    result = run.wrk(url, body, conns, duration, keys=keys)
                finally:
                    gw.stop()
                results[tree].append(result)
                print(f"{tree:14s} c={conns} p50 {result['p50_us']} us p90 {result['p90_us']} us p99 {result['p99_us']} us "
                      f"({result['rps']:.0f} req/s)", flush=True)
    finally:
        mock.stop()
    print()
    for tree, runs in results.items():
        p99s = sorted(r["p99_us"] for r in runs)
        print(f"{tree:14s} median of {len(runs)}: p50 {statistics.median(r['p50_us'] for r in runs):.0f} us, "
              f"p90 {statistics.median(r['p90_us'] for r in runs):.0f} us, p99 {statistics.median(p99s):.0f} us "
              f"(p99 of each run: {', '.join(str(p) for p in p99s)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
