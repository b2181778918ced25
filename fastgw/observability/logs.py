"""Log levels and JSON formatting for one worker process, from the config.

``general_settings.log_level`` (critical|error|warning|info|debug) sets the level of
fastgw's own loggers, the access log included; ``litellm_settings.json_logs: true`` formats every log line as JSON.
"""
from __future__ import annotations

import logging
import os
import sys
import time

import orjson

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")


def iso_utc(ts: float) -> str:
    """``2026-01-31T12:00:00.123Z``: one timestamp format for every JSON line."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": iso_utc(record.created), "level": record.levelname.lower(),
                "logger": record.name, "message": record.getMessage()}
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(line).decode()


LOG_LEVEL_ENV = "FASTGW_LOG_LEVEL"  # `fastgw serve --log-level`, handed to the workers
LEVELS = ("critical", "error", "warning", "info", "debug")


def configure_logging(log_level: str | None, json_logs: bool) -> None:
    """Called once per worker when the app is built (logging is per process by nature).

    The config's ``log_level`` wins; else ``serve --log-level``; else info.
    """
    level = log_level or os.environ.get(LOG_LEVEL_ENV) or "info"
    logging.getLogger("fastgw").setLevel(level.upper())
    root = logging.getLogger()
    if not root.handlers:  # a worker spawned by uvicorn: its root logger has no handler yet
        stderr = logging.StreamHandler(sys.stderr)
        stderr.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(stderr)
    if not json_logs:
        return
    formatter = JsonFormatter()
    for name in ("", *_UVICORN_LOGGERS):
        for handler in logging.getLogger(name).handlers:
            handler.setFormatter(formatter)
