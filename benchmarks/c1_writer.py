"""How much of the c=1 tail is the usage writer's (not a test).

At c=1 wrk keeps the gateway's core about 85% busy, and the SQLite usage writer needs
most of the rest. This runs wrk -c1 against, in turn (interleaved, ``--rounds`` times):

* ``on``: the gateway as ``run.py`` measures it (usage log on);
* ``paused``: the same with ``usage_log_flush_interval`` at 100,000 s, so the writer never
  runs during the run (rows wait in memory: a diagnostic, not a configuration);
* ``paused+process``: paused, plus a SCHED_IDLE process on the gateway's core inserting
  usage rows into its own SQLite file at the gateway's rate, handing the core back every
  ~400 SQLite VM steps (``os.sched_yield``): what a writer moved out of the gateway's
  process (no GIL shared) would cost, however it yields;
* ``paused+process-noyield`` (``--no-yield``): the same process without the yields.

    python benchmarks/c1_writer.py [--rounds 2] [--duration 8] [--no-yield]

Each tree must have its compiled core built in place (or fastgw installed).
"""
from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import mockdata  # noqa: E402
import run  # noqa: E402

PAUSED = 100_000.0
YIELD_OPS = 400
YIELD_ROWS = 4  # rows inserted between two yields (one row: ~8 us; 1, 2 and 4 measured alike)


def sqlite_writer(path: str, rate: float, yield_ops: int) -> None:
    """The same-core writer process: usage rows at ``rate`` per second, in 0.2-s batches."""
    sys.path.insert(0, str(run.ROOT))
    import msgspec

    from fastgw.usage.log import INDEXES, INSERT, SCHEMA
    from fastgw.usage.record import UsageRecord

    os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(SCHEMA)
    for statement in INDEXES:
        db.execute(statement)
    if yield_ops:
        db.set_progress_handler(os.sched_yield, yield_ops)
    # Built before the measured run starts: building rows is Python work with no yield in it
    # (a 1,000-row batch built at once is 1-3 ms the gateway's wake-ups wait behind).
    pool = [msgspec.structs.astuple(UsageRecord(
        ts=time.time(), request_id=f"req_{i:016x}", endpoint="chat.completions", key_hash=f"k{i % 100}",
        model_group="bench-chat", deployment_id="d1", provider="openai", upstream_model="gpt-4o-mini",
        status=200, latency_ms=0.2, prompt_tokens=25, completion_tokens=40, cost=3.1e-05, input_cost=4e-06,
        output_cost=2.7e-05)) for i in range(int(rate))]
    written, began = 0, time.monotonic()
    while True:
        due = int((time.monotonic() - began) * rate) - written
        if due < rate * 0.2:
            time.sleep(0.05)
            continue
        rows = pool[:due]
        db.execute("BEGIN IMMEDIATE")
        for start in range(0, len(rows), YIELD_ROWS):
            db.executemany(INSERT, rows[start:start + YIELD_ROWS])
            if yield_ops:
                os.sched_yield()
        db.execute("COMMIT")
        written += len(rows)


def gateway(workdir: Path, mock_port: int, paused: bool) -> run.Proc:
    import yaml

    config = run.gateway_config(workdir, mock_port)
    if paused:
        data = yaml.safe_load(config.read_text())
        data["general_settings"]["usage_log_flush_interval"] = PAUSED
        config.write_text(yaml.safe_dump(data))
    return run.start_gateway(workdir, config, "fast")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--no-yield", action="store_true", help="also the writer process without yields")
    parser.add_argument("--sqlite-writer", help=argparse.SUPPRESS)  # internal: run as the writer process
    parser.add_argument("--rate", type=float, default=5000.0, help=argparse.SUPPRESS)
    parser.add_argument("--yield-ops", type=int, default=YIELD_OPS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sqlite_writer:
        sqlite_writer(args.sqlite_writer, args.rate, args.yield_ops)
        return 0
    workdir = Path(tempfile.mkdtemp(prefix="fastgw-c1-writer-"))
    workdir.chmod(0o755)  # nginx workers read the mock's files
    mock, mock_kind = run.start_mock("auto", workdir)
    body = workdir / "chat.json"
    body.write_bytes(mockdata.request_body("bench-chat"))
    variants = ["on", "paused", "paused+process"] + (["paused+process-noyield"] if args.no_yield else [])
    results: dict[str, list[dict]] = {name: [] for name in variants}
    rate = 5000.0
    try:
        direct = run.wrk(f"http://127.0.0.1:{mock.port}/json/v1/chat/completions", body, 1, args.duration)
        for _ in range(args.rounds):
            for name in variants:
                gw = gateway(workdir, mock.port, paused=name != "on")
                writer = None
                try:
                    keys, _ = run.make_virtual_keys(gw.port, 100, workdir)
                    url = f"http://127.0.0.1:{gw.port}/v1/chat/completions"
                    run.wrk(url, body, 1, 2, keys=keys)  # warm-up
                    if name.startswith("paused+process"):
                        yield_ops = 0 if name.endswith("noyield") else YIELD_OPS
                        writer = run.start(f"writer-{name}", [run.PY, __file__, "--sqlite-writer",
                                                              str(workdir / f"{name}.db"), "--rate", f"{rate:.0f}",
                                                              "--yield-ops", str(yield_ops)],
                                           workdir, run.GATEWAY_CORE)
                        time.sleep(1.0)  # its row pool is built
                    cpu0 = run.cpu_seconds(writer.pid) if writer else 0.0
                    result = run.wrk(url, body, 1, args.duration, keys=keys)
                    if writer is not None and writer.popen.poll() is not None:
                        # it imports the tree it runs from: a tree without its core built in place
                        # fails there, and the variant would measure "paused" under another name
                        raise SystemExit(f"the writer process exited early: see {writer.log_path}")
                    result["writer_cpu_s"] = (run.cpu_seconds(writer.pid) - cpu0) if writer else None
                    results[name].append(result)
                    if name == "on":
                        rate = result["rps"]
                    run.log(f"{name}: p50 {result['p50_us']} us, p99 {result['p99_us']} us, {result['rps']:.0f} req/s")
                finally:
                    if writer is not None:
                        writer.stop()
                    gw.stop()
    finally:
        mock.stop()
    print(f"\nc=1 through the gateway ({mock_kind} mock; direct p50 {direct['p50_us']} us, p99 {direct['p99_us']} us)\n")
    print("| variant | p50 | p90 | p99 | requests/s | writer process CPU |")
    print("|---|---|---|---|---|---|")
    for name in variants:
        for r in results[name]:
            cpu = f"{r['writer_cpu_s'] / (args.duration):.0%} of a core" if r["writer_cpu_s"] is not None else "-"
            print(f"| {name} | {r['p50_us']} us | {r['p90_us']} us | {r['p99_us']} us | {r['rps']:.0f} | {cpu} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
