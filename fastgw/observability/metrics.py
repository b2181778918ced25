"""Prometheus metrics, owned by the Gateway object (no process-global registry).

Each ``Gateway`` builds one :class:`GatewayMetrics` with its own ``CollectorRegistry``,
so tests and embedders can run several gateways in one process without clashes. With
``--workers N`` prometheus-client's multiprocess mode (chosen by the
``PROMETHEUS_MULTIPROC_DIR`` environment variable that ``fastgw serve`` sets before the
workers start) writes every value to per-process files, and ``/metrics`` merges them.

Labels carry names an operator chose (model groups, deployment ids, key aliases),
never keys, key hashes or prompt text.

Router API (call from retry/fallback/cooldown code; all label values are plain names)::

    gw.metrics.record_retry(model_group, deployment_id, reason)
    gw.metrics.record_fallback(from_model_group, to_model_group, reason)
    gw.metrics.record_cooldown(model_group, deployment_id, reason)
    gw.metrics.set_cooling_down(model_group, deployment_id, cooling)   # bool
"""
from __future__ import annotations

from bisect import bisect_left
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from .inflight import InFlight, InFlightCount
from .multiprocess import multiprocess_dir

if TYPE_CHECKING:
    from ..pipeline import Call

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
NOT_UPSTREAM_ERRORS = frozenset({"client_disconnected"})
# Where the governance work keeps a request's cost (USD) on the usage record.
COST_FIELDS = ("cost",)


def key_alias(call: "Call") -> str:
    """The key's operator-given alias (set on the record by governance), or "" (never the key or its hash)."""
    alias = getattr(call.record, "key_alias", None) or getattr(call.principal, "key_alias", None)
    return alias if isinstance(alias, str) else ""


def record_cost(record: Any) -> float | None:
    for name in COST_FIELDS:
        value = getattr(record, name, None)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self._pending_counts: dict[tuple[Counter, tuple], float] = {}
        self._pending_histograms: dict[tuple[Histogram, tuple], list[float]] = {}
        r.register(_FlushOnCollect(self))  # first: a scrape of this registry sees every finished call
        self.requests = Counter("fastgw_requests", "Finished requests.",
                                ["endpoint", "model_group", "deployment", "provider", "status", "key_alias"],
                                registry=r)
        self.latency = Histogram("fastgw_request_latency_seconds", "Request latency, arrival to last byte.",
                                 ["endpoint", "model_group"], buckets=LATENCY_BUCKETS, registry=r)
        self.ttft = Histogram("fastgw_time_to_first_token_seconds", "Streams: arrival to first chunk.",
                              ["model_group"], buckets=TTFT_BUCKETS, registry=r)
        self.tokens = Counter("fastgw_tokens", "Tokens processed by providers (cache hits excluded).",
                              ["model_group", "provider", "direction"], registry=r)
        self.spend = Counter("fastgw_spend_usd", "Spend in USD as priced by the gateway.",
                             ["model_group", "provider", "key_alias"], registry=r)
        self.cache_hits = Counter("fastgw_cache_hits", "Requests served from the response cache.",
                                  ["model_group"], registry=r)
        self.cache_misses = Counter("fastgw_cache_misses", "Cacheable requests not served from the cache.",
                                    ["model_group"], registry=r)
        self.cache_errors = Counter("fastgw_cache_backend_errors", "Cache backend failures (served uncached).",
                                            ["backend", "operation"], registry=r)
        self.cache_skips = Counter("fastgw_cache_backend_skipped",
                                             "Cache operations skipped while the backend's circuit is open.",
                                             ["backend", "operation"], registry=r)
        self.upstream_errors = Counter("fastgw_upstream_errors", "Failed upstream attempts by error type.",
                                       ["model_group", "deployment", "provider", "error_type"], registry=r)
        self.retries = Counter("fastgw_retries", "Upstream retries.", ["model_group", "deployment", "reason"],
                               registry=r)
        self.fallbacks = Counter("fastgw_fallbacks", "Fallbacks to another model group.",
                                 ["from_model_group", "to_model_group", "reason"], registry=r)
        self.cooldowns = Counter("fastgw_deployment_cooldowns", "Deployments put in cooldown.",
                                 ["model_group", "deployment", "reason"], registry=r)
        self.cooling_down = Gauge("fastgw_deployment_cooling_down", "1 while a deployment is cooling down.",
                                  ["model_group", "deployment"], multiprocess_mode="livemax", registry=r)
        in_flight = Gauge("fastgw_in_flight_requests", "Requests being served now.", multiprocess_mode="livesum",
                          registry=r)
        # One worker: a plain count the gauge reads when collected. Several: the gauge itself,
        # kept current (the other workers' scrapes read it from this worker's file).
        self.in_flight: InFlightCount = in_flight
        if multiprocess_dir() is None:
            counter = InFlight()
            in_flight.set_function(counter.current)
            self.in_flight = counter
        self.usage_log_queue_depth = Gauge("fastgw_usage_log_queue_depth", "Usage rows waiting to be written.",
                                           multiprocess_mode="livesum", registry=r)
        self.usage_log_dropped = Counter("fastgw_usage_log_dropped_rows", "Usage rows dropped (queue full).",
                                         registry=r)
        self.webhook_sent = Counter("fastgw_webhook_records_sent", "Records delivered to the webhook.", registry=r)
        self.webhook_dropped = Counter("fastgw_webhook_records_dropped",
                                       "Records the webhook dropped (queue full or retries exhausted).", registry=r)
        self._usage_dropped_seen = 0
        self._series: dict[tuple, Any] = {}

    # per request ------------------------------------------------------------------
    def observe(self, call: "Call") -> None:
        """Adds the call's figures to the pending sums; ``flush`` hands them to prometheus-client.

        Why not ``labels(...).inc()`` per request: every prometheus-client update validates,
        takes a lock and (histograms) walks the buckets in Python; for the five series a
        request touches that was 6% of a proxied request's instructions (callgrind: 739k with
        it, 693k without). A dict sum per series costs a fraction, and a flush applies each
        series' total once."""
        record = call.record
        group = record.model_group or ""
        provider = record.provider or ""
        count = self._count
        count(self.requests, (record.endpoint, group, record.deployment_id or "", provider, record.status,
                              key_alias(call)), 1)
        self._measure(self.latency, LATENCY_BUCKETS, (record.endpoint, group), record.latency_ms / 1000.0)
        if record.ttft_ms is not None:
            self._measure(self.ttft, TTFT_BUCKETS, (group,), record.ttft_ms / 1000.0)
        if not record.cache_hit:
            if record.prompt_tokens:
                count(self.tokens, (group, provider, "input"), record.prompt_tokens)
            if record.completion_tokens:
                count(self.tokens, (group, provider, "output"), record.completion_tokens)
            cost = record_cost(record)
            if cost:
                count(self.spend, (group, provider, key_alias(call)), cost)
        for attempt in call.attempt_log:
            if attempt.error_type and attempt.error_type not in NOT_UPSTREAM_ERRORS:
                count(self.upstream_errors, (group, attempt.deployment_id, attempt.provider, attempt.error_type), 1)

    def _count(self, counter: Counter, labels: tuple, amount: float) -> None:
        key = (counter, labels)
        pending = self._pending_counts
        pending[key] = pending.get(key, 0) + amount

    def _measure(self, histogram: Histogram, buckets: tuple[float, ...], labels: tuple, value: float) -> None:
        """One observation: its bucket (the first bound >= value, as prometheus-client) and the sum."""
        key = (histogram, labels)
        sums = self._pending_histograms.get(key)
        if sums is None:
            sums = self._pending_histograms[key] = [0] * (len(buckets) + 2)  # buckets, +Inf, sum
        sums[bisect_left(buckets, value)] += 1
        sums[-1] += value

    def flush(self) -> None:
        """Hands the pending sums to prometheus-client: at every scrape (also through the
        registry, see ``_FlushOnCollect``), once a second and at shutdown; with several
        workers also after each batch of observed calls (the other workers' scrapes read
        this worker's values from its files)."""
        counts, self._pending_counts = self._pending_counts, {}
        histograms, self._pending_histograms = self._pending_histograms, {}
        for (counter, labels), amount in counts.items():
            self._child(counter, *labels).inc(amount)
        for (histogram, labels), sums in histograms.items():
            child = self._child(histogram, *labels)
            # prometheus-client (pinned) has no public call that adds n observations to a bucket;
            # test_metrics checks these match what observe() itself exports.
            for bucket, n in zip(child._buckets, sums):
                if n:
                    bucket.inc(n)
            child._sum.inc(sums[-1])

    def _child(self, metric: Any, *labels: Any) -> Any:
        """``metric.labels(*labels)``, looked up once per label set.

        ``labels()`` validates, stringifies and takes a lock on every call; a running
        gateway has few label sets (groups x deployments x statuses x key aliases), so
        their series are kept here (bounded: cleared if it ever grows past 10,000)."""
        key = (id(metric), labels)
        series = self._series.get(key)
        if series is None:
            if len(self._series) >= 10_000:
                self._series.clear()
            series = self._series[key] = metric.labels(*(str(v) for v in labels))
        return series

    def cache_lookup(self, model_group: str, hit: bool) -> None:
        self._child(self.cache_hits if hit else self.cache_misses, model_group).inc()

    def cache_backend_error(self, backend: str, operation: str) -> None:
        self.cache_errors.labels(backend, operation).inc()

    def cache_backend_skipped(self, backend: str, operation: str) -> None:
        self.cache_skips.labels(backend, operation).inc()

    def usage_log_state(self, queue_depth: int, dropped_total: int) -> None:
        """Mirror the usage log's own counters (it counts drops itself; we export the increase)."""
        self.usage_log_queue_depth.set(queue_depth)
        if dropped_total > self._usage_dropped_seen:
            self.usage_log_dropped.inc(dropped_total - self._usage_dropped_seen)
            self._usage_dropped_seen = dropped_total

    # router API ---------------------------------------------------------------------
    def record_retry(self, model_group: str, deployment_id: str, reason: str) -> None:
        self.retries.labels(model_group, deployment_id, reason).inc()

    def record_fallback(self, from_model_group: str, to_model_group: str, reason: str) -> None:
        self.fallbacks.labels(from_model_group, to_model_group, reason).inc()

    def record_cooldown(self, model_group: str, deployment_id: str, reason: str) -> None:
        self.cooldowns.labels(model_group, deployment_id, reason).inc()

    def set_cooling_down(self, model_group: str, deployment_id: str, cooling: bool) -> None:
        self.cooling_down.labels(model_group, deployment_id).set(1 if cooling else 0)


class _FlushOnCollect:
    """Registered before the metrics: collecting the registry flushes the pending sums first,
    so every reader of it (``/metrics``, tests, embedders) sees every observed call."""

    def __init__(self, metrics: GatewayMetrics) -> None:
        self.metrics = metrics

    def collect(self) -> list:
        self.metrics.flush()
        return []
