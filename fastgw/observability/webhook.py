"""Ship per-request records to an HTTP endpoint, in batches, off the request path.

Requests only enqueue (never wait on the receiver). One task posts batches as a JSON
array, retrying failures (connection errors, 5xx, 429) with exponential backoff and
jitter. The queue is bounded: when the receiver is down long enough to fill it, new
records are dropped and counted (metric ``fastgw_webhook_records_dropped_total``), as
are batches that exhaust their retries; nothing blocks and nothing grows without bound.
Delivery is at least once: a batch cut off by shutdown is sent again by ``stop``.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
import orjson

log = logging.getLogger("fastgw.webhook")


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    batch_size: int = 100
    flush_interval: float = 1.0
    queue_size: int = 10_000
    max_retries: int = 5
    timeout: float = 10.0
    backoff_base: float = 0.5
    backoff_cap: float = 30.0


class WebhookShipper:
    def __init__(self, settings: WebhookSettings, on_sent: Callable[[int], None] = lambda n: None,
                 on_dropped: Callable[[int], None] = lambda n: None) -> None:
        self.settings = settings
        self._on_sent = on_sent
        self._on_dropped = on_dropped
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=settings.queue_size)
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task | None = None
        self._stopping = False
        self._in_flight: list[dict[str, Any]] | None = None  # the batch being delivered
        self.sent = 0
        self.dropped = 0
        self._last_drop_log = 0.0

    def submit(self, record: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(record)
        except asyncio.QueueFull:
            self._drop(1, "queue full")

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.settings.timeout))
        self._task = asyncio.create_task(self._run(), name="fastgw-webhook")

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            self._in_flight = batch
            deadline = time.monotonic() + self.settings.flush_interval
            while len(batch) < self.settings.batch_size and not self._stopping:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(await asyncio.wait_for(self._queue.get(), timeout))
                except asyncio.TimeoutError:
                    break
            await self._deliver(batch)

    async def _deliver(self, batch: list[dict[str, Any]], retries: int | None = None) -> bool:
        limit = self.settings.max_retries if retries is None else retries
        body = orjson.dumps(batch, default=str)
        self._in_flight = batch  # kept if the task is cancelled mid-delivery, so stop() can resend it
        delivered = False
        for attempt in range(limit + 1):
            problem, retryable = await self._post(body)
            if problem is None:
                self.sent += len(batch)
                self._on_sent(len(batch))
                delivered = True
                break
            if not retryable or attempt == limit:
                self._drop(len(batch), f"delivery failed: {problem}")
                break
            delay = min(self.settings.backoff_cap, self.settings.backoff_base * 2 ** attempt)
            log.warning("webhook delivery of %d records failed (%s); retry %d/%d in %.1fs", len(batch), problem,
                        attempt + 1, limit, delay)
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
        self._in_flight = None
        return delivered

    async def _post(self, body: bytes) -> tuple[str | None, bool]:
        """(None, _) on success, else (what went wrong, whether a retry can help)."""
        assert self._session is not None
        headers = {"content-type": "application/json", **self.settings.headers}
        try:
            async with self._session.post(self.settings.url, data=body, headers=headers) as response:
                await response.read()
                if response.status < 300:
                    return None, False
                return f"HTTP {response.status}", response.status >= 500 or response.status in (408, 429)
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
            return type(exc).__name__, True

    def _drop(self, count: int, reason: str) -> None:
        self.dropped += count
        self._on_dropped(count)
        now = time.monotonic()
        if now - self._last_drop_log >= 5.0:  # one line per 5 s at most, with the running total
            self._last_drop_log = now
            log.error("webhook dropped %d records (%s); %d dropped so far", count, reason, self.dropped)

    async def stop(self, timeout: float = 5.0) -> None:
        """Send what is queued (one try per batch, within ``timeout``), then close."""
        self._stopping = True
        pending: list[dict[str, Any]] = []
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception:
                log.exception("webhook task failed")
            pending = self._in_flight or []
        while not self._queue.empty():
            pending.append(self._queue.get_nowait())
        deadline = time.monotonic() + timeout
        while pending and self._session is not None and time.monotonic() < deadline:
            batch, pending = pending[:self.settings.batch_size], pending[self.settings.batch_size:]
            try:
                await asyncio.wait_for(self._deliver(batch, retries=0), max(0.1, deadline - time.monotonic()))
            except asyncio.TimeoutError:
                self._drop(len(batch), "shutdown timeout")
        if pending:
            self._drop(len(pending), "shutdown")
        if self._session is not None:
            await self._session.close()
            self._session = None
