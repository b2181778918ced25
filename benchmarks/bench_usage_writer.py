"""CPU the usage writer spends per row, on its own (not a test).

The writer shares the gateway's core, so its cost per row is part of what a request costs.
This drives ``UsageLog``'s writer code directly, with no gateway and no thread switches: it
prefills the table (index upkeep depends on the table's size), then times batches as the writer
takes them, with and without the spend rollups.

    python benchmarks/bench_usage_writer.py [--prefill 100000] [--batch 500] [--batches 30]
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from fastgw.usage import rollup  # noqa: E402
from fastgw.usage.log import UsageLog  # noqa: E402
from fastgw.usage.record import UsageRecord  # noqa: E402

KEYS = [os.urandom(32).hex() for _ in range(100)]
_ids = itertools.count()


def row() -> UsageRecord:
    """A priced, keyed chat row; request ids as the gateway makes them (prefix + counter)."""
    i = next(_ids)
    return UsageRecord(ts=time.time(), request_id=f"req_0123456789abcdef{i:016x}", endpoint="chat.completions",
                       key_hash=KEYS[i % len(KEYS)], model_group="bench-chat", deployment_id="bench-chat-0",
                       provider="openai", upstream_model="gpt-4o-mini", status=200, latency_ms=0.3,
                       prompt_tokens=20, completion_tokens=9, attempts=1, key_alias=f"key-{i % len(KEYS)}",
                       team_id=f"team-{i % 10}", cost=1e-5, input_cost=3e-6, output_cost=7e-6)


class NoFold:
    """A batch's rollups left out (what they cost is the difference)."""

    def add(self, rows: list) -> None:
        pass

    def daily(self) -> list:
        return []

    def totals(self) -> list:
        return []


def per_row_us(prefill: int, batch: int, batches: int, rollups: bool) -> float:
    log = UsageLog(os.path.join(tempfile.mkdtemp(prefix="fastgw-writer-"), "usage.db"))
    log._connect()
    saved = rollup.Fold
    if not rollups:
        rollup.Fold = NoFold  # type: ignore[misc]
    try:
        for _ in range(prefill // 5000):
            log._queue.extend(row() for _ in range(5000))
            log._write_queued()
        times = []
        for _ in range(batches):
            log._queue.extend(row() for _ in range(batch))
            started = time.process_time()
            log._write_queued()
            times.append(time.process_time() - started)
    finally:
        rollup.Fold = saved  # type: ignore[misc]
    times.sort()
    return times[len(times) // 2] / batch * 1e6


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prefill", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    for rollups in (True, False):
        us = per_row_us(args.prefill, args.batch, args.batches, rollups)
        print(f"{'with' if rollups else 'without'} rollups: {us:.1f} us of CPU per row "
              f"(median of {args.batches} batches of {args.batch}, {args.prefill:,} rows already in the table)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
