"""CPU the usage writer spends per row, on its own (not a test).

The writer shares the gateway's core, so its cost per row is part of what a request costs.
This drives ``UsageLog``'s writer code directly, with no gateway and no thread switches: it
prefills the table (index upkeep depends on the table's size), then times batches as the writer
takes them, with and without the spend rollups.

    python benchmarks/bench_usage_writer.py [--prefill 100000] [--batch 500] [--batches 30]

It also splits the CPU with rollups into the writer's statements (inserts, rollup upserts,
COMMIT with its WAL writes and checkpoints) and the Python around them.
"""
from __future__ import annotations

import argparse
import collections
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

    def minutes(self) -> list:
        return []

    def upserts(self) -> tuple:
        return ()


class TimedConnection:
    """The writer's connection, with the CPU of each kind of statement added up."""

    def __init__(self, db) -> None:  # noqa: ANN001 - sqlite3.Connection
        self._db = db
        self.cpu: collections.Counter[str] = collections.Counter()

    def __getattr__(self, name: str):  # noqa: ANN204
        method = getattr(self._db, name)
        if name not in ("execute", "executemany", "commit"):
            return method

        def timed(*args):  # noqa: ANN002, ANN202
            started = time.process_time()
            try:
                return method(*args)
            finally:
                sql = args[0] if args else ""
                kind = ("commit" if name == "commit" else "insert" if "usage_log" in sql
                        else "rollup upserts" if sql.startswith("INSERT") else "other statements")
                self.cpu[kind] += time.process_time() - started
        return timed


def per_row_us(prefill: int, batch: int, batches: int, rollups: bool,
               split: collections.Counter | None = None) -> float:
    log = UsageLog(os.path.join(tempfile.mkdtemp(prefix="fastgw-writer-"), "usage.db"))
    log._connect()
    timed = log._db = TimedConnection(log._db)
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
            timed.cpu.clear()
            log._write_queued()
            times.append(time.process_time() - started)
            if split is not None:
                split.update({kind: cpu / batch * 1e6 / batches for kind, cpu in timed.cpu.items()})
                split["total"] += times[-1] / batch * 1e6 / batches
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
        split: collections.Counter = collections.Counter()
        us = per_row_us(args.prefill, args.batch, args.batches, rollups, split)
        print(f"{'with' if rollups else 'without'} rollups: {us:.1f} us of CPU per row "
              f"(median of {args.batches} batches of {args.batch}, {args.prefill:,} rows already in the table)")
        if rollups:
            total = split.pop("total")
            parts = ", ".join(f"{kind} {cpu:.1f}" for kind, cpu in split.most_common() if cpu >= 0.05)
            print(f"  mean {total:.1f} us per row: {parts}; Python around them (taking rows, folding "
                  f"rollups, slice checks) {total - sum(split.values()):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
