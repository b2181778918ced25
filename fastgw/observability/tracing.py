"""OpenTelemetry traces: one span per request, one child span per upstream attempt.

Spans are built when the request finishes, from the times the pipeline recorded, so
the request path pays nothing for tracing beyond two timestamps per attempt. Attribute
names follow the GenAI semantic conventions (``gen_ai.*``). Prompts and completions
are never put on spans.

Enabled by ``litellm_settings.callbacks: ["otel"]`` (LiteLLM's name). Like LiteLLM,
``OTEL_EXPORTER`` picks the exporter (``otlp_http``, the default, or ``console``),
``OTEL_ENDPOINT`` and ``OTEL_HEADERS`` ("k=v,k2=v2") where it sends; the standard
``OTEL_EXPORTER_OTLP_*`` variables work too. Service name: ``OTEL_SERVICE_NAME`` or fastgw.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from .metrics import key_alias

if TYPE_CHECKING:
    from ..pipeline import Call

OPERATIONS = {"chat.completions": "chat", "completions": "text_completion", "embeddings": "embeddings",
              "messages": "chat"}
# fastgw provider name -> gen_ai.provider.name well-known value
PROVIDER_NAMES = {"azure": "azure.ai.openai", "bedrock": "aws.bedrock", "gemini": "gcp.gemini",
                  "vertex_ai": "gcp.vertex_ai"}
# request body field -> gen_ai.request.* attribute
REQUEST_ATTRIBUTES = {
    "max_tokens": "gen_ai.request.max_tokens", "max_completion_tokens": "gen_ai.request.max_tokens",
    "temperature": "gen_ai.request.temperature", "top_p": "gen_ai.request.top_p",
    "frequency_penalty": "gen_ai.request.frequency_penalty", "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed", "n": "gen_ai.request.choice_count",
}


class Tracing:
    def __init__(self, exporter: SpanExporter, service_name: str = "fastgw", batch: bool = True) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
        self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("fastgw")

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Tracing":
        kind = (env.get("OTEL_EXPORTER") or "otlp_http").lower()
        exporter: SpanExporter
        if kind == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=_traces_endpoint(env.get("OTEL_ENDPOINT")),
                                        headers=_parse_headers(env.get("OTEL_HEADERS")))
        return cls(exporter, env.get("OTEL_SERVICE_NAME") or "fastgw")

    def record(self, call: "Call") -> None:
        record = call.record
        operation = OPERATIONS.get(record.endpoint, record.endpoint)
        start_ns = int(record.ts * 1e9)
        end_ns = start_ns + int(record.latency_ms * 1e6)
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": record.model_group or "",
            "gen_ai.request.stream": record.stream,
            "gen_ai.usage.input_tokens": record.prompt_tokens,
            "gen_ai.usage.output_tokens": record.completion_tokens,
            "http.response.status_code": record.status,
            "fastgw.request_id": record.request_id,
            "fastgw.cache_hit": record.cache_hit,
            "fastgw.attempts": record.attempts,
        }
        if record.provider:
            attributes["gen_ai.system"] = record.provider
            attributes["gen_ai.provider.name"] = PROVIDER_NAMES.get(record.provider, record.provider)
        if record.upstream_model:
            attributes["gen_ai.response.model"] = record.upstream_model
        if record.deployment_id:
            attributes["fastgw.deployment"] = record.deployment_id
        if record.cached_tokens:
            attributes["gen_ai.usage.cache_read.input_tokens"] = record.cached_tokens
        if record.ttft_ms is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = record.ttft_ms / 1000.0
        alias = key_alias(call)
        if alias:
            attributes["fastgw.key_alias"] = alias
        for field, name in REQUEST_ATTRIBUTES.items():
            value = call.body.get(field)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                attributes[name] = value
        attributes.update(_response_attributes(call.completion))
        if record.error_type:
            attributes["error.type"] = record.error_type
        span = self.tracer.start_span(f"{operation} {record.model_group}", kind=SpanKind.SERVER,
                                      start_time=start_ns, attributes=attributes)
        if record.error_type or record.status >= 500:
            span.set_status(Status(StatusCode.ERROR, record.error_type or str(record.status)))
        context = trace.set_span_in_context(span)
        for number, attempt in enumerate(call.attempt_log, 1):
            child_attributes: dict[str, Any] = {
                "gen_ai.operation.name": operation, "gen_ai.request.model": attempt.model,
                "gen_ai.system": attempt.provider,
                "gen_ai.provider.name": PROVIDER_NAMES.get(attempt.provider, attempt.provider),
                "fastgw.deployment": attempt.deployment_id, "fastgw.attempt": number,
            }
            if attempt.status is not None:
                child_attributes["http.response.status_code"] = attempt.status
            if attempt.error_type:
                child_attributes["error.type"] = attempt.error_type
            child = self.tracer.start_span(f"{operation} {attempt.model}", context=context, kind=SpanKind.CLIENT,
                                           start_time=attempt.start_ns, attributes=child_attributes)
            if attempt.error_type:
                child.set_status(Status(StatusCode.ERROR, attempt.error_type))
            child.end(end_time=attempt.end_ns or end_ns)
        span.end(end_time=end_ns)

    def shutdown(self) -> None:
        self.provider.shutdown()


def _response_attributes(completion: dict | None) -> dict[str, Any]:
    if not isinstance(completion, dict):
        return {}
    out: dict[str, Any] = {}
    if isinstance(completion.get("id"), str):
        out["gen_ai.response.id"] = completion["id"]
    reasons = [c.get("finish_reason") for c in completion.get("choices") or () if isinstance(c, dict)]
    reasons = [r for r in reasons if isinstance(r, str)]
    if reasons:
        out["gen_ai.response.finish_reasons"] = reasons
    return out


def _traces_endpoint(endpoint: str | None) -> str | None:
    """LiteLLM users give the collector's base URL; OTLP/HTTP wants ``.../v1/traces``."""
    if not endpoint:
        return None
    scheme, sep, rest = endpoint.partition("://")
    if sep and "/" not in rest.strip("/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def _parse_headers(value: str | None) -> dict[str, str] | None:
    if not value:
        return None
    headers = {}
    for part in value.split(","):
        name, sep, content = part.partition("=")
        if sep and name.strip():
            headers[name.strip()] = content.strip()
    return headers or None
