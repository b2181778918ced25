"""Traces through the SDK's in-memory exporter: a request span with one child per attempt."""
from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from fastgw.observability.tracing import Tracing, _parse_headers, _traces_endpoint


def traced(call):
    exporter = InMemorySpanExporter()
    tracing = Tracing(exporter, batch=False)
    tracing.record(call)
    tracing.shutdown()
    return exporter.get_finished_spans()


def test_request_span_with_child_per_attempt(make_call):
    spans = traced(make_call(attempts=[("overloaded", 529), (None, 200)]))
    request = next(s for s in spans if s.kind == SpanKind.SERVER)
    children = [s for s in spans if s.kind == SpanKind.CLIENT]
    assert request.name == "chat gpt-4o-mini" and len(children) == 2
    assert all(c.parent is not None and c.parent.span_id == request.context.span_id for c in children)
    assert all(c.context.trace_id == request.context.trace_id for c in children)
    attrs = request.attributes
    assert attrs["gen_ai.operation.name"] == "chat" and attrs["gen_ai.request.model"] == "gpt-4o-mini"
    assert attrs["gen_ai.system"] == "openai" and attrs["gen_ai.provider.name"] == "openai"
    assert attrs["gen_ai.usage.input_tokens"] == 24 and attrs["gen_ai.usage.output_tokens"] == 8
    assert attrs["gen_ai.request.temperature"] == 0.5 and attrs["gen_ai.request.max_tokens"] == 50
    assert attrs["gen_ai.response.model"] == "gpt-4o-mini-2024" and attrs["gen_ai.response.id"] == "chatcmpl-1"
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("stop",)
    assert attrs["fastgw.key_alias"] == "team-a" and attrs["fastgw.attempts"] == 2
    first, second = sorted(children, key=lambda s: s.start_time)
    assert first.status.status_code == StatusCode.ERROR and first.attributes["error.type"] == "overloaded"
    assert second.attributes["fastgw.attempt"] == 2 and second.attributes["gen_ai.request.model"] == "gpt-4o-mini-2024"
    assert request.start_time <= first.start_time and request.end_time >= request.start_time
    assert not any("hello there" in str(s.attributes) for s in spans), "no prompt content on spans"


def test_failed_request_and_cache_hit(make_call):
    failed = traced(make_call(status=502, error_type="connection_error", attempts=[("connection_error", 502)]))
    request = next(s for s in failed if s.kind == SpanKind.SERVER)
    assert request.status.status_code == StatusCode.ERROR and request.attributes["error.type"] == "connection_error"
    hit = traced(make_call(cache_hit=True))
    assert len(hit) == 1 and hit[0].attributes["fastgw.cache_hit"] is True


def test_exporter_settings_helpers():
    assert _traces_endpoint("http://collector:4318") == "http://collector:4318/v1/traces"
    assert _traces_endpoint("http://collector:4318/v1/traces") == "http://collector:4318/v1/traces"
    assert _traces_endpoint(None) is None
    assert _parse_headers("api-key=abc, x=1") == {"api-key": "abc", "x": "1"}
