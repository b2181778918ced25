"""Router settings, read from LiteLLM's ``router_settings`` / ``litellm_settings`` sections.

LiteLLM accepts several of these in either section; ``router_settings`` wins when both
set one. Problems raise ``ValueError`` naming the setting's path; the config loader turns
them into its one-line ``ConfigError``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

STRATEGIES = ("simple-shuffle", "least-busy", "latency-based-routing", "usage-based-routing", "cost-based-routing")
# LiteLLM's older spellings of the same strategies.
STRATEGY_ALIASES = {"usage-based-routing-v2": "usage-based-routing", "lowest-latency": "latency-based-routing",
                    "lowest-cost": "cost-based-routing"}

DEFAULT_NUM_RETRIES = 2  # LiteLLM's default (openai.DEFAULT_MAX_RETRIES)
DEFAULT_ALLOWED_FAILS = 3
DEFAULT_COOLDOWN_TIME = 5.0
DEFAULT_TIMEOUT = 600.0
DEFAULT_MAX_RETRY_DELAY = 10.0
DEFAULT_HEALTH_CHECK_INTERVAL = 300.0
FAIL_WINDOW_SECONDS = 60.0

# Settings read from either section (router_settings first).
_SHARED = ("num_retries", "fallbacks", "context_window_fallbacks", "content_policy_fallbacks", "default_fallbacks",
           "allowed_fails", "cooldown_time", "retry_after", "max_retry_delay", "stream_timeout",
           "stream_idle_timeout", "disable_cooldowns")

ROUTER_SETTINGS = frozenset({*_SHARED, "routing_strategy", "routing_strategy_args", "timeout"})
LITELLM_SETTINGS = frozenset({*_SHARED, "request_timeout"})
GENERAL_SETTINGS = frozenset({"background_health_checks", "health_check_interval"})


@dataclass(frozen=True, slots=True)
class RouterSettings:
    routing_strategy: str = "simple-shuffle"
    num_retries: int = DEFAULT_NUM_RETRIES
    allowed_fails: int = DEFAULT_ALLOWED_FAILS
    cooldown_time: float = DEFAULT_COOLDOWN_TIME
    disable_cooldowns: bool = False
    retry_after: float = 0.0  # LiteLLM: minimum wait before a retry
    max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY  # fastgw: cap on backoff and on an honoured retry-after
    timeout: float | None = None  # whole request (all attempts); None: DEFAULT_TIMEOUT without streams' bodies
    stream_timeout: float | None = None  # LiteLLM: wait for a stream's first chunk
    stream_idle_timeout: float | None = None  # fastgw: longest gap between chunks once a stream is relayed
    fallbacks: dict[str, list[str]] = field(default_factory=dict)
    context_window_fallbacks: dict[str, list[str]] | None = None  # None: not configured, generic fallbacks apply
    content_policy_fallbacks: dict[str, list[str]] | None = None
    default_fallbacks: list[str] = field(default_factory=list)
    lowest_latency_buffer: float = 0.0
    exploration_rate: float = 0.05
    background_health_checks: bool = False
    health_check_interval: float = DEFAULT_HEALTH_CHECK_INTERVAL


def parse_router_settings(router: Mapping[str, Any], litellm: Mapping[str, Any], general: Mapping[str, Any],
                          groups: Iterable[str]) -> RouterSettings:
    """Validate and resolve the router's settings; fallback groups must exist."""
    known = set(groups)

    def get(name: str) -> tuple[Any, str]:
        if router.get(name) is not None:
            return router[name], f"router_settings.{name}"
        return litellm.get(name), f"litellm_settings.{name}"

    strategy = router.get("routing_strategy") or "simple-shuffle"
    strategy = STRATEGY_ALIASES.get(strategy, strategy)
    if strategy not in STRATEGIES:
        raise ValueError(f"router_settings.routing_strategy: unknown strategy {strategy!r} "
                         f"(known: {', '.join(STRATEGIES)})")
    args = router.get("routing_strategy_args") or {}
    if not isinstance(args, dict):
        raise ValueError("router_settings.routing_strategy_args: must be a mapping")

    timeout, where = (router.get("timeout"), "router_settings.timeout")
    if timeout is None:
        timeout, where = litellm.get("request_timeout"), "litellm_settings.request_timeout"
    values: dict[str, Any] = {
        "routing_strategy": strategy,
        "num_retries": _int(*get("num_retries"), DEFAULT_NUM_RETRIES),
        "allowed_fails": _int(*get("allowed_fails"), DEFAULT_ALLOWED_FAILS),
        "cooldown_time": _number(*get("cooldown_time"), DEFAULT_COOLDOWN_TIME, allow_zero=True),
        "disable_cooldowns": bool(get("disable_cooldowns")[0]),
        "retry_after": _number(*get("retry_after"), 0.0, allow_zero=True),
        "max_retry_delay": _number(*get("max_retry_delay"), DEFAULT_MAX_RETRY_DELAY, allow_zero=True),
        "timeout": _optional_number(timeout, where),
        "stream_timeout": _optional_number(*get("stream_timeout")),
        "stream_idle_timeout": _optional_number(*get("stream_idle_timeout")),
        "fallbacks": _fallback_map(*get("fallbacks"), known) or {},
        "context_window_fallbacks": _fallback_map(*get("context_window_fallbacks"), known),
        "content_policy_fallbacks": _fallback_map(*get("content_policy_fallbacks"), known),
        "default_fallbacks": _group_list(*get("default_fallbacks"), known),
        "lowest_latency_buffer": _number(args.get("lowest_latency_buffer"),
                                         "router_settings.routing_strategy_args.lowest_latency_buffer", 0.0,
                                         allow_zero=True),
        "exploration_rate": _number(args.get("exploration_rate"),
                                    "router_settings.routing_strategy_args.exploration_rate", 0.05, allow_zero=True),
        "background_health_checks": bool(general.get("background_health_checks")),
        "health_check_interval": _number(general.get("health_check_interval"), "general_settings.health_check_interval",
                                         DEFAULT_HEALTH_CHECK_INTERVAL),
    }
    if values["exploration_rate"] > 1:
        raise ValueError("router_settings.routing_strategy_args.exploration_rate: must be between 0 and 1")
    return RouterSettings(**values)


def _int(value: Any, where: str, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < 0:
        raise ValueError(f"{where}: must be a whole number >= 0")
    return int(value)


def _number(value: Any, where: str, default: float, *, allow_zero: bool = False) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or (value == 0 and not allow_zero):
        raise ValueError(f"{where}: must be a number {'>= 0' if allow_zero else '> 0'}")
    return float(value)


def _optional_number(value: Any, where: str) -> float | None:
    return None if value is None else _number(value, where, 0.0)


def _group_list(value: Any, where: str, known: set[str]) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{where}: must be a list of model group names")
    for name in value:
        if name not in known:
            raise ValueError(f"{where}: unknown model group {name!r}")
    return list(value)


def _fallback_map(value: Any, where: str, known: set[str]) -> dict[str, list[str]] | None:
    """LiteLLM's ``[{"group": ["fallback", ...]}, ...]`` (a plain mapping works too)."""
    if value is None:
        return None
    items: list[tuple[Any, Any]] = []
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        items = [pair for entry in value for pair in entry.items()]
    else:
        raise ValueError(f'{where}: must be a list like [{{"gpt-4o": ["claude-sonnet"]}}]')
    out: dict[str, list[str]] = {}
    for group, targets in items:
        if not isinstance(group, str):
            raise ValueError(f"{where}: keys must be model group names")
        if group != "*" and group not in known:
            raise ValueError(f"{where}: unknown model group {group!r}")
        out.setdefault(group, []).extend(_group_list(targets, f"{where}.{group}", known))
    return out
