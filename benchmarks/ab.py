"""Interleaved A/B of two source trees under the `make bench` harness (not a test).

This VM's speed drifts by tens of percent within a day, so "before" and "after" figures from
different runs do not compare. This runs both trees against the same mock with the same
pinning, alternating, so drift hits both equally. Each tree must have its compiled core built
in place (``cythonize -i fastgw/_core/*.pyx``); an old commit can be checked out with
``git worktree add /tmp/old <commit>``.

    python benchmarks/ab.py /tmp/old . [--rounds 2] [--duration 4]
"""
from __future__ import annotations

import argparse
import os
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    sys.exit(main())
