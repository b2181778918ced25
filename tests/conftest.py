"""Fixtures that run the gateway and mock upstreams as real processes."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import pytest
import yaml

TESTS = Path(__file__).resolve().parent
MOCKS = TESTS / "mocks"
TRANSCRIPTS = Path(os.environ.get("FASTGW_TRANSCRIPTS") or TESTS.parents[1] / "shared" / "reference" / "transcripts")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20.0, log_path: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = log_path.read_text() if log_path else (proc.stdout.read() if proc.stdout else "")
            raise RuntimeError(f"process exited with {proc.returncode}:\n{out}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} did not open within {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


@dataclass
class MockUpstream:
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict]:
        import json
        import urllib.request

        return json.loads(urllib.request.urlopen(self.url + "/_mock/requests").read())

    def reset(self) -> None:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(self.url + "/_mock/reset", method="POST", data=b"")).read()


@pytest.fixture(scope="session")
def mock_upstream() -> Iterator[MockUpstream]:
    port = free_port()
    env = dict(os.environ, FASTGW_TRANSCRIPTS=str(TRANSCRIPTS), PYTHONPATH=str(MOCKS))
    proc = subprocess.Popen([sys.executable, str(MOCKS / "server.py"), "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, text=True)
    wait_for_port(port, proc)
    yield MockUpstream(port, proc)
    stop_process(proc)


@dataclass
class Gateway:
    port: int
    proc: subprocess.Popen
    workdir: Path
    config_path: Path
    key: str | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def db_path(self) -> Path:
        return self.workdir / "usage.db"

    def stop(self) -> int:
        return stop_process(self.proc)

    def log(self) -> str:
        return (self.workdir / "gateway.log").read_text()

    def usage_rows(self) -> list[dict]:
        import sqlite3

        con = sqlite3.connect(self.db_path)
        con.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in con.execute("SELECT * FROM usage_log ORDER BY id")]
        finally:
            con.close()


GatewayFactory = Callable[..., Gateway]


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[GatewayFactory]:
    """Start ``fastgw serve`` on a config dict; stopped (SIGTERM) at teardown."""
    started: list[Gateway] = []

    def start(config: dict | None, *, workers: int = 1, env: dict | None = None, key: str | None = None) -> Gateway:
        workdir = tmp_path / f"gw{len(started)}"
        workdir.mkdir()
        config_path = workdir / "config.yaml"
        args = [sys.executable, "-m", "fastgw", "serve", "--port", "0", "--workers", str(workers)]
        if config is not None:
            config = dict(config)
            general = dict(config.get("general_settings") or {})
            general.setdefault("database_url", f"sqlite:///{workdir / 'usage.db'}")
            if key:
                general["master_key"] = key
            config["general_settings"] = general
            config_path.write_text(yaml.safe_dump(config))
            args += ["--config", str(config_path)]
        port = free_port()
        args[args.index("--port") + 1] = str(port)
        log_file = open(workdir / "gateway.log", "w")
        proc = subprocess.Popen(args, cwd=workdir, env=dict(os.environ, **(env or {})), stdout=log_file,
                                stderr=subprocess.STDOUT, text=True)
        log_file.close()
        wait_for_port(port, proc, log_path=workdir / "gateway.log")
        gw = Gateway(port, proc, workdir, config_path, key)
        started.append(gw)
        return gw

    yield start
    for gw in started:
        gw.stop()


def openai_deployment(name: str, upstream: MockUpstream, model: str = "gpt-4o-mini", **params: object) -> dict:
    return {"model_name": name, "litellm_params": {"model": f"openai/{model}", "api_base": upstream.url + "/v1",
                                                   "api_key": "sk-upstream-secret", **params}}
