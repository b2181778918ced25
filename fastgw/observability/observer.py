"""Everything that happens when a request finishes, behind one call: ``gw.observer.observe_soon(call)``.

Called from ``pipeline.finish_record`` for every request that gets that far (served,
failed, cache hit, abandoned by the client). Each sink is isolated: a failing sink is
logged and skipped, it never fails the request or keeps the others from running.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import TYPE_CHECKING, Callable

from . import multiprocess
from .access_log import AccessLog
from .attempts import close_open_attempts
from .logs import configure_logging
from ..errors import GatewayError
from .metrics import GatewayMetrics, key_alias
from .settings import ObservabilitySettings
from .summary import request_summary

if TYPE_CHECKING:
    from ..pipeline import Call
    from ..usage import UsageLog
    from .tracing import Tracing
    from .webhook import WebhookShipper

log = logging.getLogger("fastgw.observability")

GAUGE_REFRESH_SECONDS = 1.0
# Finished requests wait at most this long to be observed when no upstream call comes along to
# overlap with (an idle gateway); /metrics and shutdown observe what is pending first.
OBSERVE_DELAY_SECONDS = 0.002


class Observer:
    def __init__(self, settings: ObservabilitySettings, metrics: GatewayMetrics, usage_log: "UsageLog",
                 tracing: "Tracing | None" = None, webhook: "WebhookShipper | None" = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.usage_log = usage_log
        self.access_log = AccessLog(settings.include_messages) if settings.access_log else None
        self.tracing = tracing
        self.webhook = webhook
        self._failed_sinks: set[str] = set()
        self._gauge_task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # perf: get_running_loop() costs a getpid() on 3.11
        self._pending: list["Call"] = []
        self._timer: asyncio.TimerHandle | None = None
        self._soon = False  # observe_pending is already scheduled for the next loop step
        # With several workers a scrape reads the other workers' metric files: hand each batch's
        # sums over at once there. One worker flushes per scrape (and once a second) only.
        self._flush_each_batch = multiprocess.multiprocess_dir() is not None

    @classmethod
    def from_settings(cls, settings: ObservabilitySettings, metrics: GatewayMetrics,
                      usage_log: "UsageLog") -> "Observer":
        configure_logging(settings.log_level, settings.json_logs)
        tracing = None
        if settings.tracing:
            from .tracing import Tracing

            tracing = Tracing.from_env(os.environ)
        webhook = None
        if settings.webhook is not None:
            from .webhook import WebhookShipper

            webhook = WebhookShipper(settings.webhook, on_sent=metrics.webhook_sent.inc,
                                     on_dropped=metrics.webhook_dropped.inc)
        return cls(settings, metrics, usage_log, tracing, webhook)

    @property
    def wants_completion(self) -> bool:
        """Must the response body be kept on the call (message logging opted in)?"""
        return self.settings.include_messages

    def observe_soon(self, call: "Call") -> None:
        """Observe ``call`` off its client's latency: not now (its response may still be unwritten),
        but while a later request waits on its upstream (``while_upstream_waits``), or after
        ``OBSERVE_DELAY_SECONDS`` if none does.

        Why not simply ``call_soon``: at low concurrency the next request arrives while that
        callback runs, so the ~7% of a request's instructions spent here (callgrind) landed on
        the next request's latency; run during an upstream wait, the loop was idle anyway."""
        self._pending.append(call)
        if self._timer is None:
            self._timer = (self._loop or asyncio.get_running_loop()).call_later(OBSERVE_DELAY_SECONDS,
                                                                                 self.observe_pending)

    def while_upstream_waits(self) -> None:
        """Called just before a request awaits its upstream: pending observations run once the
        calling task yields to that wait."""
        if self._pending and not self._soon:
            self._soon = True
            (self._loop or asyncio.get_running_loop()).call_soon(self.observe_pending)

    def observe_pending(self) -> None:
        self._soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        for call in pending:
            self.observe(call)
        if self._flush_each_batch and pending:
            self._run("metrics", lambda _: self.metrics.flush(), None)  # type: ignore[arg-type]

    def observe(self, call: "Call") -> None:
        self._run("attempts", lambda c: close_open_attempts(c.attempt_log, c.record.status, c.record.error_type), call)
        self._run("metrics", self.metrics.observe, call)
        if self.access_log is not None:
            self._run("access log", self.access_log.write, call)
        if self.tracing is not None:
            self._run("tracing", self.tracing.record, call)
        if self.webhook is not None:
            webhook = self.webhook
            self._run("webhook", lambda c: webhook.submit(request_summary(c, self.settings.include_messages)), call)

    def rejected(self, endpoint: str, request_id: str, call: "Call | None", err: GatewayError) -> None:
        """A request refused before any upstream attempt (auth, validation, limits): counted and
        logged, but no usage row, trace or webhook record (nothing was spent)."""
        try:
            group = call.model_group if call is not None else ""
            alias = key_alias(call) if call is not None else ""
            self.metrics.requests.labels(endpoint, group, "", "", str(err.status), alias).inc()
            if self.access_log is not None:
                self.access_log.write_rejected(endpoint, request_id, group or None, alias or None, err)
        except Exception:
            log.exception("observability failed for rejected request %s", request_id)

    def _run(self, sink: str, action: Callable[["Call"], None], call: "Call | None") -> None:
        try:
            action(call)  # type: ignore[arg-type]
        except Exception:
            if sink not in self._failed_sinks:  # log the first failure of each sink with its traceback
                self._failed_sinks.add(sink)
                log.exception("observability sink %s failed (request %s)", sink,
                              call.request_id if call is not None else "-")

    def refresh_gauges(self) -> None:
        """On every scrape, once a second and at shutdown: the usage-log gauges, and the
        per-request metric sums handed to prometheus-client."""
        self.metrics.flush()
        self.metrics.usage_log_state(self.usage_log.queue_depth, self.usage_log.dropped)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.webhook is not None:
            await self.webhook.start()
        self._gauge_task = asyncio.create_task(self._refresh_gauges_periodically(), name="fastgw-metrics-gauges")

    async def _refresh_gauges_periodically(self) -> None:
        """With several workers a scrape reaches only one, so each keeps its own gauges fresh."""
        while True:
            await asyncio.sleep(GAUGE_REFRESH_SECONDS)
            self._run("usage log gauges", lambda _: self.refresh_gauges(), None)  # type: ignore[arg-type]

    async def stop(self) -> None:
        self.observe_pending()
        if self._gauge_task is not None:
            self._gauge_task.cancel()
            await asyncio.gather(self._gauge_task, return_exceptions=True)
        if self.webhook is not None:
            await self.webhook.stop()
        if self.tracing is not None:
            await asyncio.to_thread(self.tracing.shutdown)  # flushes spans over HTTP: off the loop
        self.refresh_gauges()
        multiprocess.mark_this_worker_dead()
