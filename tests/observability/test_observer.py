"""The observer: every sink runs, a failing one is isolated, nothing reaches the request."""
from __future__ import annotations

import asyncio
import logging

import orjson
import pytest

from fastgw.errors import GatewayError
from fastgw.observability.logs import JsonFormatter, iso_utc
from fastgw.observability.metrics import GatewayMetrics
from fastgw.observability.observer import OBSERVE_DELAY_SECONDS, Observer
from fastgw.observability.settings import ObservabilitySettings


class FakeUsageLog:
    queue_depth = 3
    dropped = 0


class Boom:
    def record(self, call) -> None:  # noqa: ANN001
        raise RuntimeError("exporter down")

    def submit(self, record) -> None:  # noqa: ANN001
        raise RuntimeError("queue gone")


def test_a_failing_sink_does_not_stop_the_others_or_raise(make_call):
    metrics = GatewayMetrics()
    observer = Observer(ObservabilitySettings(access_log=False), metrics, FakeUsageLog(), tracing=Boom(),  # type: ignore[arg-type]
                        webhook=Boom())  # type: ignore[arg-type]
    observer.observe(make_call())
    observer.observe(make_call())
    observer.refresh_gauges()  # on every scrape and once a second, not per request
    assert _served(metrics) == 2
    assert metrics.usage_log_queue_depth._value.get() == 3


def test_open_attempt_is_closed_with_the_outcome(make_call):
    call = make_call(status=502, error_type="stream_truncated")
    call.attempt_log[-1].end_ns = None
    call.attempt_log[-1].error_type = None
    Observer(ObservabilitySettings(access_log=False), GatewayMetrics(), FakeUsageLog()).observe(call)  # type: ignore[arg-type]
    assert call.attempt_log[-1].end_ns is not None and call.attempt_log[-1].error_type == "stream_truncated"


def test_rejected_requests_are_counted(make_call):
    metrics = GatewayMetrics()
    observer = Observer(ObservabilitySettings(access_log=False), metrics, FakeUsageLog())  # type: ignore[arg-type]
    observer.rejected("chat.completions", "r1", None, GatewayError(401, "no", code="invalid_api_key"))
    observer.rejected("chat.completions", "r2", make_call(), GatewayError(429, "slow down", code="rate_limit"))
    assert metrics.requests.labels("chat.completions", "", "", "", "401", "")._value.get() == 1
    assert metrics.requests.labels("chat.completions", "gpt-4o-mini", "", "", "429", "team-a")._value.get() == 1


def test_json_formatter():
    record = logging.LogRecord("fastgw.x", logging.WARNING, __file__, 1, "hello %s", ("world",), None)
    line = orjson.loads(JsonFormatter().format(record))
    assert line == {"ts": iso_utc(record.created), "level": "warning", "logger": "fastgw.x", "message": "hello world"}
    assert iso_utc(0.5) == "1970-01-01T00:00:00.500Z"


def _served(metrics: GatewayMetrics) -> float:
    metrics.flush()  # what a scrape does: the calls observed so far, summed
    return metrics.requests.labels("chat.completions", "gpt-4o-mini", "dep-1", "openai", "200", "team-a")._value.get()


@pytest.fixture
async def started():
    """A started observer (its loop known, as in the gateway) and its metrics; stopped after."""
    metrics = GatewayMetrics()
    observer = Observer(ObservabilitySettings(access_log=False), metrics, FakeUsageLog())  # type: ignore[arg-type]
    await observer.start()
    yield observer, metrics
    await observer.stop()


async def test_observations_wait_for_the_next_upstream_wait(make_call, started):
    observer, metrics = started
    observer.observe_soon(make_call())
    observer.observe_soon(make_call())
    assert _served(metrics) == 0  # not while the response may still be unwritten
    observer.while_upstream_waits()
    assert _served(metrics) == 0  # not before the calling task yields
    await asyncio.sleep(0)
    assert _served(metrics) == 2
    await asyncio.sleep(0.01)  # the fallback timer finds nothing left: no double count
    assert _served(metrics) == 2


async def test_an_idle_gateway_observes_after_the_delay(make_call, started):
    observer, metrics = started
    observer.observe_soon(make_call())
    await asyncio.sleep(0)
    assert _served(metrics) == 0
    await asyncio.sleep(OBSERVE_DELAY_SECONDS * 10)
    assert _served(metrics) == 1


async def test_stop_and_scrape_observe_what_is_pending(make_call, started):
    observer, metrics = started
    observer.observe_soon(make_call())
    observer.observe_pending()  # what GET /metrics does before rendering
    assert _served(metrics) == 1
    observer.observe_soon(make_call())
    await observer.stop()
    assert _served(metrics) == 2
