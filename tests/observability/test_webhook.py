"""The webhook shipper against a local receiver: batches, retries, bounded queue, flush on stop."""
from __future__ import annotations

import asyncio

import orjson
import pytest
from aiohttp import web

from fastgw.observability.webhook import WebhookSettings, WebhookShipper


class Receiver:
    def __init__(self, fail_first: int = 0, status: int = 500) -> None:
        self.batches: list[list[dict]] = []
        self.headers: list[dict] = []
        self.fail_first = fail_first
        self.status = status
        self.calls = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.calls += 1
        body = orjson.loads(await request.read())
        if self.calls <= self.fail_first:
            return web.Response(status=self.status)
        self.batches.append(body)
        self.headers.append({k.lower(): v for k, v in request.headers.items()})
        return web.Response(status=204)

    @property
    def records(self) -> list[dict]:
        return [r for batch in self.batches for r in batch]


@pytest.fixture
async def receiver_url():
    servers = []

    async def start(receiver: Receiver) -> str:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        servers.append(runner)
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}/hook"

    yield start
    for runner in servers:
        await runner.cleanup()


async def wait_for(predicate, timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not met in time")


async def test_records_arrive_in_batches_with_headers(receiver_url):
    receiver = Receiver()
    settings = WebhookSettings(url=await receiver_url(receiver), headers={"authorization": "Bearer hook"},
                               batch_size=3, flush_interval=0.05)
    sent = []
    shipper = WebhookShipper(settings, on_sent=sent.append)
    await shipper.start()
    for i in range(7):
        shipper.submit({"n": i})
    await wait_for(lambda: len(receiver.records) == 7)
    await shipper.stop()
    assert [r["n"] for r in receiver.records] == list(range(7))
    assert max(len(b) for b in receiver.batches) <= 3 and sum(sent) == 7
    assert receiver.headers[0]["authorization"] == "Bearer hook"


async def test_failed_deliveries_are_retried(receiver_url):
    receiver = Receiver(fail_first=2, status=503)
    settings = WebhookSettings(url=await receiver_url(receiver), flush_interval=0.01, backoff_base=0.01)
    shipper = WebhookShipper(settings)
    await shipper.start()
    shipper.submit({"n": 1})
    await wait_for(lambda: len(receiver.records) == 1)
    await shipper.stop()
    assert receiver.calls == 3 and shipper.dropped == 0


async def test_exhausted_retries_and_rejections_drop_and_count(receiver_url):
    receiver = Receiver(fail_first=100, status=400)
    dropped = []
    settings = WebhookSettings(url=await receiver_url(receiver), flush_interval=0.01, backoff_base=0.01)
    shipper = WebhookShipper(settings, on_dropped=dropped.append)
    await shipper.start()
    shipper.submit({"n": 1})
    await wait_for(lambda: shipper.dropped == 1)
    assert receiver.calls == 1, "a 4xx is not retried"
    await shipper.stop()
    assert sum(dropped) == 1


async def test_unreachable_receiver_is_retried_then_dropped():
    settings = WebhookSettings(url="http://127.0.0.1:9/hook", flush_interval=0.01, backoff_base=0.01, max_retries=2)
    shipper = WebhookShipper(settings)
    await shipper.start()
    shipper.submit({"n": 1})
    await wait_for(lambda: shipper.dropped == 1)
    await shipper.stop()


async def test_bounded_queue_counts_drops_and_stop_flushes(receiver_url):
    receiver = Receiver()
    settings = WebhookSettings(url=await receiver_url(receiver), queue_size=5, batch_size=100, flush_interval=60)
    dropped = []
    shipper = WebhookShipper(settings, on_dropped=dropped.append)
    for i in range(8):  # not started yet: nothing drains the queue
        shipper.submit({"n": i})
    assert shipper.dropped == 3 and sum(dropped) == 3
    await shipper.start()
    await shipper.stop()
    assert sorted(r["n"] for r in receiver.records) == [0, 1, 2, 3, 4], "stop sends what was queued"
