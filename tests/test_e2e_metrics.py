"""End to end: /metrics after a known sequence of requests (1 and 2 workers), the access log,
the webhook and OTLP traces, all from a real `fastgw serve` process."""
from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import openai
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families

from conftest import openai_deployment

MASTER = "sk-fastgw-metrics-test-key"
SECRET_PROMPT = "my-very-private-prompt"


def client(gw, key: str = MASTER) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, timeout=20)


def metric_samples(gw) -> list:
    text = httpx.get(gw.url + "/metrics").text
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


def total(samples: list, name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


def ask(gw, n: int, **kwargs):
    return client(gw).chat.completions.create(model="gpt-4o-mini",
                                              messages=[{"role": "user", "content": f"{SECRET_PROMPT} {n}"}], **kwargs)


def known_sequence(gw) -> int:
    """6 served (3 plain, 2 streams, 1 cache hit), 1 upstream error, 2 refused. Returns the request count."""
    for n in range(3):
        ask(gw, n)
    for n in range(3, 5):
        list(ask(gw, n, stream=True, stream_options={"include_usage": True}))
    ask(gw, 0)  # the same question as the first: a cache hit
    with pytest.raises(openai.BadRequestError):
        client(gw).chat.completions.create(model="ctx-too-long", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError):
        client(gw).chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.AuthenticationError):
        client(gw, "sk-wrong-key").chat.completions.create(model="gpt-4o-mini",
                                                           messages=[{"role": "user", "content": "x"}])
    return 9


@pytest.fixture
def redis_namespace():
    namespace = f"fastgw-test-{uuid.uuid4().hex[:12]}"
    yield namespace
    r = redis.Redis(host="127.0.0.1", port=6379)
    keys = list(r.scan_iter(f"{namespace}:*"))
    if keys:
        r.delete(*keys)
    r.close()


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_after_a_known_sequence(start_gateway, mock_upstream, redis_namespace, workers):
    mock_upstream.reset()
    # Redis so that the cache hit does not depend on which worker answers.
    config = {
        "model_list": [openai_deployment("gpt-4o-mini", mock_upstream),
                       openai_deployment("ctx-too-long", mock_upstream,
                                         model="x@error=openai-error-400-context-length.http")],
        "litellm_settings": {"cache": True, "cache_params": {"type": "redis", "namespace": redis_namespace}},
    }
    gw = start_gateway(config, key=MASTER, workers=workers)
    known_sequence(gw)
    for _ in range(3 if workers > 1 else 1):  # any worker answers with the merged totals
        s = metric_samples(gw)
        assert total(s, "fastgw_requests_total", model_group="gpt-4o-mini", status="200") == 6
        assert total(s, "fastgw_requests_total", model_group="gpt-4o-mini", status="200", provider="openai") == 5
        assert total(s, "fastgw_requests_total", model_group="gpt-4o-mini", status="200", deployment="") == 1
        assert total(s, "fastgw_requests_total", model_group="ctx-too-long", status="400") == 1
        assert total(s, "fastgw_requests_total", model_group="", status="404") == 1
        assert total(s, "fastgw_requests_total", status="401") == 1
        assert total(s, "fastgw_requests_total") == 9
        assert total(s, "fastgw_request_latency_seconds_count", model_group="gpt-4o-mini") == 6
        assert total(s, "fastgw_time_to_first_token_seconds_count", model_group="gpt-4o-mini") == 2
        assert total(s, "fastgw_tokens_total", model_group="gpt-4o-mini", direction="input") == 5 * 24
        assert total(s, "fastgw_tokens_total", model_group="gpt-4o-mini", direction="output") == 5 * 8
        assert total(s, "fastgw_spend_usd_total", model_group="gpt-4o-mini") > 0
        assert total(s, "fastgw_cache_hits_total", model_group="gpt-4o-mini") == 1
        assert total(s, "fastgw_cache_misses_total", model_group="gpt-4o-mini") == 5
        assert total(s, "fastgw_upstream_errors_total", model_group="ctx-too-long",
                     error_type="context_length_exceeded") == 1
        assert total(s, "fastgw_in_flight_requests") == 0
        assert any(x.name == "fastgw_usage_log_queue_depth" for x in s)
        assert total(s, "fastgw_usage_log_dropped_rows_total") == 0
        labels = json.dumps([x.labels for x in s])
        assert MASTER not in labels and SECRET_PROMPT not in labels and "sk-wrong-key" not in labels


def test_access_log_is_one_json_line_per_request_without_key_or_prompt(start_gateway, mock_upstream):
    mock_upstream.reset()
    config = {"model_list": [openai_deployment("gpt-4o-mini", mock_upstream),
                             openai_deployment("ctx-too-long", mock_upstream,
                                               model="x@error=openai-error-400-context-length.http")],
              "litellm_settings": {"cache": True}}
    gw = start_gateway(config, key=MASTER)
    count = known_sequence(gw)
    gw.stop()
    log = gw.log()
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert len(requests) == count
    assert len({r["request_id"] for r in requests}) == count
    assert MASTER not in log and "sk-wrong-key" not in log and SECRET_PROMPT not in log
    served = [r for r in requests if r["status"] == 200]
    assert len(served) == 6 and [r["cache"] for r in served].count("hit") == 1
    hit = next(r for r in served if r["cache"] == "hit")
    assert hit["cost"] == 0 and hit["attempts"] == 0
    streamed = [r for r in served if r["stream"]]
    assert len(streamed) == 2 and all(r["ttft_ms"] is not None for r in streamed)
    for r in served:
        assert {"request_id", "key_alias", "model", "deployment", "status", "latency_ms", "ttft_ms", "prompt_tokens",
                "completion_tokens", "cost", "cache", "attempts"} <= set(r)
    assert {r["level"] for r in requests if r["status"] >= 400} == {"warning"}


def test_access_log_with_message_logging_opted_in_and_a_level(start_gateway, mock_upstream):
    mock_upstream.reset()
    config = {"model_list": [openai_deployment("gpt-4o-mini", mock_upstream)],
              "litellm_settings": {"turn_off_message_logging": False}}
    gw = start_gateway(config, key=MASTER)
    ask(gw, 1)
    list(ask(gw, 2, stream=True))
    gw.stop()
    lines = [json.loads(x) for x in gw.log().splitlines() if x.startswith('{"ts"')]
    assert [line["request"]["messages"][0]["content"] for line in lines] == [f"{SECRET_PROMPT} 1", f"{SECRET_PROMPT} 2"]
    assert all(line["response"]["choices"][0]["message"]["content"] == "The capital of France is Paris."
               for line in lines)
    quiet = start_gateway({**config, "general_settings": {"log_level": "warning"}}, key=MASTER)
    ask(quiet, 1)
    with pytest.raises(openai.NotFoundError):
        client(quiet).chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    quiet.stop()
    lines = [json.loads(x) for x in quiet.log().splitlines() if x.startswith('{"ts"')]
    assert [line["status"] for line in lines] == [404], "log_level warning keeps only the failures"


class Receiver:
    """A local HTTP endpoint collecting POST bodies (webhook batches, OTLP exports)."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.bodies.append((self.path, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def wait(self, predicate, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError("the receiver did not get what was expected in time")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_webhook_ships_one_record_per_request(start_gateway, mock_upstream, receiver):
    mock_upstream.reset()
    config = {"model_list": [openai_deployment("gpt-4o-mini", mock_upstream)],
              "general_settings": {"webhook_url": receiver.url + "/records", "webhook_flush_interval": 0.1,
                                   "webhook_headers": {"authorization": "Bearer hook-token"}}}
    gw = start_gateway(config, key=MASTER)
    for n in range(3):
        ask(gw, n)
    list(ask(gw, 3, stream=True))

    def records() -> list[dict]:
        return [r for path, body in receiver.bodies if path == "/records" for r in json.loads(body)]

    receiver.wait(lambda: len(records()) == 4)
    got = records()
    assert {r["status"] for r in got} == {200} and [r["stream"] for r in got].count(True) == 1
    assert all(r["model"] == "gpt-4o-mini" and r["prompt_tokens"] == 24 for r in got)
    text = json.dumps(got)
    assert MASTER not in text and SECRET_PROMPT not in text


def test_otlp_traces_reach_a_collector(start_gateway, mock_upstream, receiver):
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    mock_upstream.reset()
    config = {"model_list": [openai_deployment("gpt-4o-mini", mock_upstream)],
              "litellm_settings": {"callbacks": ["otel"]}}
    gw = start_gateway(config, key=MASTER, env={"OTEL_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    ask(gw, 1)
    receiver.wait(lambda: any(path == "/v1/traces" for path, _ in receiver.bodies))
    spans = []
    for _path, body in receiver.bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                spans.extend(scope.spans)
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    server = next(s for s in spans if s.kind == Span.SPAN_KIND_SERVER)
    assert server.name == "chat gpt-4o-mini"
    child = next(s for s in spans if s.parent_span_id == server.span_id)
    attrs = {a.key: a.value for a in server.attributes}
    assert attrs["gen_ai.request.model"].string_value == "gpt-4o-mini"
    assert attrs["gen_ai.usage.input_tokens"].int_value == 24 and attrs["gen_ai.system"].string_value == "openai"
    assert child.trace_id == server.trace_id and child.kind == Span.SPAN_KIND_CLIENT


def test_router_retries_and_fallbacks_are_counted(start_gateway, mock_upstream):
    mock_upstream.reset()
    config = {
        "model_list": [openai_deployment("limited", mock_upstream, model="x@error=openai-error-429-rate-limit.http"),
                       openai_deployment("backup", mock_upstream)],
        "router_settings": {"num_retries": 1, "fallbacks": [{"limited": ["backup"]}]},
    }
    gw = start_gateway(config, key=MASTER)
    answer = client(gw).chat.completions.create(model="limited", messages=[{"role": "user", "content": "x"}])
    assert answer.choices[0].message.content
    s = metric_samples(gw)
    attempts_on_limited = len([r for r in mock_upstream.requests() if "429" in r["body"]])
    assert attempts_on_limited >= 1
    assert total(s, "fastgw_upstream_errors_total", model_group="limited",
                 error_type="rate_limit_exceeded") == attempts_on_limited
    assert total(s, "fastgw_retries_total", model_group="limited") == attempts_on_limited - 1
    assert total(s, "fastgw_fallbacks_total", from_model_group="limited", to_model_group="backup") == 1
    assert total(s, "fastgw_requests_total", model_group="limited", status="200") == 1
