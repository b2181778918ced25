"""Access log lines: one JSON object per request, level by outcome, no key or prompt by default."""
from __future__ import annotations

import logging

import orjson
import pytest

from fastgw.errors import GatewayError
from fastgw.observability.access_log import AccessLog, level_for


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def capture():
    logger = logging.getLogger("fastgw.test-access")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    handler = Capture()
    logger.addHandler(handler)
    yield logger, handler
    logger.removeHandler(handler)


def test_line_fields(capture, make_call):
    logger, handler = capture
    AccessLog(logger=logger).write(make_call(stream=True))
    line = orjson.loads(handler.records[0].getMessage())
    assert handler.records[0].levelno == logging.INFO
    for field in ("request_id", "key_alias", "model", "deployment", "status", "latency_ms", "ttft_ms",
                  "prompt_tokens", "completion_tokens", "cost", "cache", "attempts", "ts"):
        assert field in line
    assert line["key_alias"] == "team-a" and line["attempts"] == 1 and line["ttft_ms"] == 30.0
    assert "hello there" not in handler.records[0].getMessage() and "0" * 64 not in handler.records[0].getMessage()
    assert "request" not in line and "response" not in line


def test_messages_only_when_opted_in(capture, make_call):
    logger, handler = capture
    AccessLog(include_messages=True, logger=logger).write(make_call(prompt="show me"))
    line = orjson.loads(handler.records[0].getMessage())
    assert line["request"]["messages"][0]["content"] == "show me"
    assert line["response"]["choices"][0]["message"]["content"] == "the answer"


def test_cache_hit_is_logged_with_cost_zero(capture, make_call):
    logger, handler = capture
    call = make_call(cache_hit=True, cost=None)
    call.response_headers["x-fastgw-cache"] = "hit"
    AccessLog(logger=logger).write(call)
    line = orjson.loads(handler.records[0].getMessage())
    assert line["cache"] == "hit" and line["cache_hit"] is True and line["cost"] == 0.0 and line["attempts"] == 0


def test_levels_follow_outcome_and_configured_level_filters(capture, make_call):
    assert level_for(200, None) == logging.INFO
    assert level_for(429, "rate_limit_exceeded") == logging.WARNING
    assert level_for(499, "client_disconnected") == logging.WARNING
    assert level_for(502, "connection_error") == logging.ERROR
    assert level_for(200, "server_error") == logging.ERROR, "a stream that broke after its 200"
    logger, handler = capture
    logger.setLevel(logging.WARNING)
    log = AccessLog(logger=logger)
    log.write(make_call())
    log.write(make_call(status=500, error_type="server_error"))
    assert [r.levelno for r in handler.records] == [logging.ERROR]


def test_rejected_request_line(capture):
    logger, handler = capture
    AccessLog(logger=logger).write_rejected("chat.completions", "req-9", None, None,
                                            GatewayError(401, "bad key", code="invalid_api_key"))
    line = orjson.loads(handler.records[0].getMessage())
    assert line["status"] == 401 and line["error"] == "invalid_api_key" and line["request_id"] == "req-9"
