"""One JSON line per finished request on stdout, at a level that follows the outcome.

Successful requests log at INFO, client errors and disconnects at WARNING, gateway and
upstream failures at ERROR, so ``log_level: warning`` keeps only the failures.
"""
from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING

import orjson

from ..errors import GatewayError
from .logs import iso_utc
from .summary import request_summary

if TYPE_CHECKING:
    from ..pipeline import Call

LOGGER_NAME = "fastgw.access"
_HANDLER_MARK = "_fastgw_access_handler"


def _stdout_logger() -> logging.Logger:
    """The access logger writes bare lines to stdout and does not propagate to the root logger."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, _HANDLER_MARK, False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        setattr(handler, _HANDLER_MARK, True)
        logger.addHandler(handler)
    logger.propagate = False
    return logger


def level_for(status: int, error_type: str | None) -> int:
    if status >= 500 or (error_type and status < 400 and error_type != "client_disconnected"):
        return logging.ERROR  # includes streams that failed after a 200 was committed
    if status >= 400 or error_type:
        return logging.WARNING
    return logging.INFO


class AccessLog:
    def __init__(self, include_messages: bool = False, logger: logging.Logger | None = None) -> None:
        self.include_messages = include_messages
        self.logger = logger if logger is not None else _stdout_logger()

    def write(self, call: "Call") -> None:
        record = call.record
        level = level_for(record.status, record.error_type)
        if not self.logger.isEnabledFor(level):
            return
        line = {"ts": iso_utc(record.ts), "level": logging.getLevelName(level).lower(), "event": "request",
                **request_summary(call, self.include_messages)}
        self.logger.log(level, orjson.dumps(line, default=str).decode())


    def write_rejected(self, endpoint: str, request_id: str, model: str | None, alias: str | None,
                       err: GatewayError) -> None:
        level = level_for(err.status, err.code)
        if not self.logger.isEnabledFor(level):
            return
        line = {"ts": iso_utc(time.time()), "level": logging.getLevelName(level).lower(), "event": "request",
                "request_id": request_id, "key_alias": alias, "endpoint": endpoint, "model": model,
                "status": err.status, "error": err.code or err.type, "attempts": 0}
        self.logger.log(level, orjson.dumps(line).decode())
