"""Instructions the gateway executes per request, counted by callgrind (not a test).

Wall-clock and CPU-time figures move with whatever else the machine runs; callgrind
counts instructions, which repeat to a fraction of a percent for the same code and
inputs. That makes it the tool for before/after comparisons of one change on a busy
machine. Valgrind runs the gateway ~50x slower, so latency figures from this run mean
nothing; only the counts do.

    python benchmarks/bench_instructions.py [--n 400] [--stream-n 100] [--no-keys]

It starts the static mock (nginx, or the built-in mock), the gateway under
``valgrind --tool=callgrind --instr-atstart=no`` with the same config as run.py
(virtual keys with budget, rpm and tpm limits; prices; usage log), warms it up, then
switches collection on for exactly N sequential non-streaming requests, then for N
100-chunk streams, and prints instructions per request (all threads of the process:
the event loop, the SQLite writer). Needs valgrind (apt-get install valgrind).
"""
from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the benchmark harness: mock, config, keys)


def request(conn: http.client.HTTPConnection, body: bytes, key: str) -> bytes:
    conn.request("POST", "/v1/chat/completions", body=body,
                 headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    response = conn.getresponse()
    data = response.read()
    if response.status != 200:
        raise RuntimeError(f"gateway answered {response.status}: {data[:300]!r}")
    return data


def drive(port: int, body: bytes, keys: list[str], n: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    for i in range(n):
        request(conn, body, keys[i % len(keys)])
    conn.close()


def control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True, capture_output=True, timeout=120)


def collected(out: Path) -> int:
    """Total instructions in the dump files written since the last call."""
    total = 0
    for path in sorted(out.parent.glob(out.name + "*")):
        match = re.search(r"^totals:\s+(\d+)", path.read_text(errors="replace"), re.M)
        if match:
            total += int(match.group(1))
        path.unlink()
    return total


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=400, help="non-streaming requests measured")
    parser.add_argument("--stream-n", type=int, default=100, help="100-chunk streams measured")
    parser.add_argument("--warm", type=int, default=300)
    parser.add_argument("--no-keys", action="store_true", help="master key only (no governance work)")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    workdir = Path(tempfile.mkdtemp(prefix="fastgw-instr-"))
    workdir.chmod(0o755)  # nginx workers (another user) read the mock files below it
    mock, _ = run.start_mock("auto", workdir)
    gateway = None
    try:
        config = run.gateway_config(workdir, mock.port)
        port = run.free_port()
        out = workdir / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}",
               run.PY, "-m", "fastgw", "serve", "--config", str(config), "--port", str(port), "--log-level",
               "warning"]
        gateway = run.Proc("gateway", subprocess.Popen(cmd, stdout=open(workdir / "gw.log", "w"),
                                                       stderr=subprocess.STDOUT, env=run.gateway_env("fast"),
                                                       cwd=str(workdir), start_new_session=True),
                           workdir / "gw.log", port)
        run.wait_port(port, gateway.popen, timeout=300, what="gateway under valgrind")
        if args.no_keys:
            keys = [run.MASTER_KEY]
        else:
            path, _ = run.make_virtual_keys(port, 20, workdir)
            keys = path.read_text().split() if path else [run.MASTER_KEY]
        chat = json.dumps({"model": "bench-chat", "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "What is the capital of France? Answer in one short sentence."}]}).encode()
        stream = json.dumps({"model": "bench-stream", "stream": True, "stream_options": {"include_usage": True},
                             "messages": [{"role": "user", "content": "Tell me about Paris."}]}).encode()
        drive(port, chat, keys, args.warm)
        drive(port, stream, keys, max(20, args.warm // 5))
        time.sleep(1.0)  # let the usage writer settle before counting
        collected(out)
        results = {}
        for name, body, n in (("request", chat, args.n), ("stream", stream, args.stream_n)):
            control(gateway.pid, "--instr=on")
            drive(port, body, keys, n)
            time.sleep(0.5)  # the write-behind rows of these requests belong to them
            control(gateway.pid, "--instr=off")
            control(gateway.pid, "--dump")
            time.sleep(0.5)
            results[name] = collected(out) / n
        print(f"instructions per non-streaming request: {results['request']:,.0f}")
        print(f"instructions per 100-chunk stream:      {results['stream']:,.0f}")
        print("INSTR_JSON " + json.dumps(results))
    finally:
        if gateway is not None:
            gateway.stop()
        mock.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
