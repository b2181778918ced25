"""What the usage-log retention cleanup costs (not a test).

Two measurements:

* ``--rows N`` (default): the writer's own cost, no gateway. N rows 40 days old and 50,000
  recent ones are written, then a 7-day cleanup runs; prints the process CPU per deleted row
  and the deletion rate.
* ``--load``: a gateway at c=64 (pinned as in ``run.py``) without and with a 20-s period,
  interleaved ``--rounds`` times: 25 s of load so rows age past the period, then a measured
  run while the cleanup deletes them. Prints requests/s, CPU per request and rows deleted.

    python benchmarks/bench_retention.py [--rows 200000] [--load [--rounds 3]]
"""
from __future__ import annotations

import argparse
import asyncio
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import mockdata  # noqa: E402
import run  # noqa: E402

DAY = 86400.0


def usage_row(ts: float, i: int):
    from fastgw.usage.record import UsageRecord

    return UsageRecord(ts=ts, request_id=f"req-{i:012d}", endpoint="chat.completions", status=200,
                       key_hash=f"k{i % 100}", team_id=f"t{i % 10}", model_group="g", provider="openai", cost=0.001,
                       prompt_tokens=100, completion_tokens=20)


async def writer_cost(rows: int) -> None:
    from fastgw.usage.log import UsageLog
    from fastgw.usage.retention import Pruner, RetentionSettings

    now = time.time()
    path = str(Path(tempfile.mkdtemp(prefix="fastgw-retention-")) / "usage.db")
    log = UsageLog(path)
    await log.start()
    log.priority.normal()  # filling the table is not what is measured
    for i in range(rows):
        log.record(usage_row(now - 40 * DAY + i * 0.5, i))
        if i % 20_000 == 0:
            await log.flush()
    for i in range(50_000):
        log.record(usage_row(now - 3600 + i * 0.05, rows + i))
    await log.flush()
    pruner = Pruner(RetentionSettings(period=7 * DAY), log, lambda _: None)
    started, before = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    deleted, minutes = await pruner.run_once()
    after = resource.getrusage(resource.RUSAGE_SELF)
    wall = time.monotonic() - started
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    await log.stop()
    print(f"deleted {deleted:,} usage rows and {minutes:,} spend-minute rows in {wall:.1f} s: process CPU "
          f"{cpu:.2f} s, {cpu / deleted * 1e6:.1f} us per usage row, {deleted / wall:,.0f} rows/s")


def under_load(rounds: int, fill: float, measure: float) -> None:
    import httpx
    import yaml

    workdir = Path(tempfile.mkdtemp(prefix="fastgw-retention-"))
    workdir.chmod(0o755)  # nginx workers read the mock's files
    mock, _ = run.start_mock("auto", workdir)
    body = workdir / "chat.json"
    body.write_bytes(mockdata.request_body("bench-chat"))
    results: dict[str, list[tuple[float, float, int]]] = {}
    try:
        for r in range(rounds):
            for variant in ("without", "with 20-s period"):
                folder = workdir / f"round{r}-{'off' if variant == 'without' else 'on'}"
                folder.mkdir()
                folder.chmod(0o755)
                config_path = run.gateway_config(folder, mock.port)
                config = yaml.safe_load(config_path.read_text())
                if variant != "without":
                    config["general_settings"].update(maximum_spend_logs_retention_period="20s",
                                                      maximum_spend_logs_retention_interval="1s")
                config_path.write_text(yaml.safe_dump(config))
                gw = run.start_gateway(folder, config_path, "fast")
                try:
                    keys, _ = run.make_virtual_keys(gw.port, 100, folder)
                    url = f"http://127.0.0.1:{gw.port}/v1/chat/completions"
                    run.wrk(url, body, 64, fill, keys)
                    cpu0 = run.tree_cpu(gw.pid)
                    result = run.wrk(url, body, 64, measure, keys)
                    cpu = (run.tree_cpu(gw.pid) - cpu0) / result["requests"] * 1e6
                    state = httpx.get(f"http://127.0.0.1:{gw.port}/health/readiness").json()["usage_log"]
                finally:
                    gw.stop()
                deleted = state["retention"]["deleted_rows"]
                results.setdefault(variant, []).append((result["rps"], cpu, deleted))
                print(f"round {r} {variant:>16s}: {result['rps']:,.0f} req/s, CPU {cpu:.0f} us/request, "
                      f"{deleted:,} rows deleted", flush=True)
    finally:
        mock.stop()
    for variant, rows in results.items():
        print(f"{variant:>16s}: median {statistics.median(x[0] for x in rows):,.0f} req/s, CPU per request "
              f"{min(x[1] for x in rows):.0f}-{max(x[1] for x in rows):.0f} us (median "
              f"{statistics.median(x[1] for x in rows):.0f})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--load", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fill", type=float, default=25.0, help="seconds of load before the measured run")
    parser.add_argument("--duration", type=float, default=10.0)
    args = parser.parse_args()
    if args.load:
        under_load(args.rounds, args.fill, args.duration)
    else:
        asyncio.run(writer_cost(args.rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
