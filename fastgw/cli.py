"""``fastgw serve | check-config | version``."""
from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid

from . import __version__, workers
from ._core.server import BUSY_POLL_DEFAULT_US, BUSY_POLL_ENV, BUSY_POLL_MAX_US
from .config import ConfigError, LoadedConfig, load_config

HTTP_ENV = "FASTGW_HTTP"  # "httptools": uvicorn's own HTTP protocol instead of the compiled one

log = logging.getLogger("fastgw")


def _load_or_exit(path: str | None) -> LoadedConfig:
    try:
        return load_config(path)
    except ConfigError as exc:
        print(f"fastgw: config error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .app import CONFIG_ENV
    from .governance.service import INSTANCE_ENV, WORKERS_ENV
    from .observability.logs import LOG_LEVEL_ENV
    from .observability.multiprocess import prepare_for_workers, remove_dir

    loaded = _load_or_exit(args.config)
    for warning in loaded.warnings:
        log.warning("%s", warning)
    if not loaded.config.general_settings.master_key:
        log.warning("no general_settings.master_key set: the gateway accepts requests without a key")
    os.environ[CONFIG_ENV] = os.path.abspath(args.config) if args.config else ""
    # One id for this run, inherited by every worker: they share one governance counter file
    # (budgets and rate limits are per instance, not per worker) and a restart starts it afresh.
    os.environ[INSTANCE_ENV] = uuid.uuid4().hex
    os.environ[WORKERS_ENV] = str(args.workers)
    os.environ[LOG_LEVEL_ENV] = args.log_level
    if args.busy_poll_us is not None:  # else an inherited FASTGW_BUSY_POLL_US, or the default
        os.environ[BUSY_POLL_ENV] = str(args.busy_poll_us)
    metrics_dir = prepare_for_workers(args.workers)  # prometheus multiprocess mode, before workers start
    log.info("fastgw %s serving %d model group(s) from %s on http://%s:%d (%d worker(s))", __version__,
             len({d.model_name for d in loaded.deployments}), loaded.source, args.host, args.port, args.workers)
    # perf: the compiled HTTP/1.1 protocol (fastgw/_core/server.pyx); FASTGW_HTTP=httptools selects uvicorn's own
    http = "httptools" if os.environ.get(HTTP_ENV) == "httptools" else "fastgw._core.server:HttpProtocol"
    # perf: no X-Forwarded-* rewriting per request (uvicorn's ProxyHeadersMiddleware): fastgw
    # never reads the client address or scheme.
    options = dict(loop="uvloop", http=http, lifespan="on", access_log=False, log_level=args.log_level,
                   timeout_graceful_shutdown=30, server_header=False, proxy_headers=False)
    try:
        if args.workers > 1 and workers.supported() and os.environ.get(workers.MODE_ENV) != "uvicorn":
            # perf: one SO_REUSEPORT socket per worker, so connections spread evenly (fastgw/workers.py)
            return workers.run("fastgw.app:create_app", args.host, args.port, args.workers, options)
        uvicorn.run("fastgw.app:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                    **options)
    finally:
        remove_dir(metrics_dir)
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    loaded = _load_or_exit(args.config)
    for warning in loaded.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"config OK: {loaded.source}")
    print(f"{'model_name':<28} {'provider':<14} {'model':<40} deployment id")
    for dep in loaded.deployments:
        print(f"{dep.model_name:<28} {dep.provider:<14} {dep.model:<40} {dep.id}")
    return 0


def cmd_version(args: argparse.Namespace) -> int:
    print(f"fastgw {__version__}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fastgw", description="Self-hosted OpenAI-compatible LLM gateway")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="LiteLLM-style config.yaml (default: the embedded mock config)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=4000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument("--busy-poll-us", type=int, default=None, metavar="US",
                       help="keep the event loop polling this many microseconds after activity instead of "
                            f"sleeping (lower latency on VMs; 0 turns it off; default {BUSY_POLL_DEFAULT_US:g})")
    serve.set_defaults(func=cmd_serve)
    check = sub.add_parser("check-config", help="validate a config file and print its models")
    check.add_argument("config")
    check.set_defaults(func=cmd_check_config)
    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=cmd_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(args, "log_level", "info").upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "workers", 1) < 1:
        print("fastgw: --workers must be at least 1", file=sys.stderr)
        return 2
    busy_poll = getattr(args, "busy_poll_us", None)
    if busy_poll is not None and not 0 <= busy_poll <= BUSY_POLL_MAX_US:
        print(f"fastgw: --busy-poll-us must be between 0 and {BUSY_POLL_MAX_US:.0f}", file=sys.stderr)
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
