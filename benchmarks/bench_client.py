"""The upstream clients alone: CPU per request of aiohttp vs the compiled client.

Run: python benchmarks/bench_client.py [--n 20000] [--url http://127.0.0.1:PORT/json/v1/chat/completions]

Without --url it starts the built-in mock (benchmarks/fast_mock.py) pinned to core 1 and
pins itself to core 0. Each client sends the same POST (the gateway's upstream request for
a chat completion) sequentially and with 32 concurrent tasks, reading every body; the
figure is this process's CPU time per request (client work only: the mock runs elsewhere).
Both clients run in one process, alternating, twice.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import uvloop

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
sys.path.insert(0, str(BENCH))

from fastgw.providers.base import UpstreamRequest  # noqa: E402
from fastgw.upstream.client import HTTPTransport  # noqa: E402
from fastgw.upstream.fast import FastTransport  # noqa: E402


async def measure(transport, url: str, n: int, concurrency: int) -> tuple[float, float]:
    request = UpstreamRequest("POST", url, {"content-type": "application/json", "accept": "application/json",
                                            "authorization": "Bearer sk-upstream"},
                              b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}')

    async def worker(count: int) -> None:
        for _ in range(count):
            response = await transport.send(request, connect_timeout=5, read_timeout=30)
            try:
                await response.read()
            finally:
                response.close()

    await worker(200)  # warm-up: connections open
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*[worker(n // concurrency) for _ in range(concurrency)])
    done = (n // concurrency) * concurrency
    return (time.process_time() - cpu) / done * 1e6, done / (time.perf_counter() - wall)


async def run(url: str, n: int) -> list[tuple[str, int, float, float]]:
    results = []
    for _ in range(2):
        for name, factory in (("aiohttp", HTTPTransport), ("compiled", FastTransport)):
            for concurrency in (1, 32):
                transport = factory()
                await transport.start()
                try:
                    cpu, rps = await measure(transport, url, n, concurrency)
                finally:
                    await transport.close()
                results.append((name, concurrency, cpu, rps))
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--n", type=int, default=20000)
    args = parser.parse_args()
    mock = None
    url = args.url
    if url is None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        mock = subprocess.Popen(["taskset", "-c", "1", sys.executable, str(BENCH / "fast_mock.py"), "--port", str(port)])
        url = f"http://127.0.0.1:{port}/json/v1/chat/completions"
        time.sleep(1.0)
    try:
        os.sched_setaffinity(0, {0})
    except OSError:
        pass
    try:
        results = uvloop.run(run(url, args.n))
    finally:
        if mock is not None:
            mock.terminate()
            mock.wait()
    best: dict[tuple[str, int], tuple[float, float]] = {}
    for name, concurrency, cpu, rps in results:
        key = (name, concurrency)
        if key not in best or cpu < best[key][0]:
            best[key] = (cpu, rps)
    print("| client | concurrency | CPU per request (best of 2) | requests/s |")
    print("|---|---|---|---|")
    for (name, concurrency), (cpu, rps) in sorted(best.items()):
        print(f"| {name} | {concurrency} | {cpu:.1f} us | {rps:,.0f} |")


if __name__ == "__main__":
    main()
