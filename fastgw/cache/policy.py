"""What to cache and for how long: the config's settings and each request's own controls.

Config (LiteLLM's names)::

    litellm_settings:
      cache: true
      cache_params:
        type: local            # local (default, in-process LRU) | redis
        ttl: 600               # seconds an entry lives
        namespace: fastgw      # key prefix
        max_size_bytes: 67108864
        supported_call_types: [acompletion, atext_completion, aembedding]
        mode: default_on       # default_off: only requests that say {"cache": {"use-cache": true}}
        host / port / password / username / db / url   # redis

Per request: the body's ``cache`` object (``no-cache``, ``no-store``, ``ttl``,
``namespace``, ``s-maxage``, ``use-cache``; removed before the body goes upstream) and the
``Cache-Control`` header (``no-cache``, ``no-store``, ``max-age=N``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..errors import bad_request
from .backends import DEFAULT_MAX_SIZE_BYTES

CACHE_LITELLM_SETTINGS = frozenset({"cache", "cache_params"})  # what this module acts on
DEFAULT_TTL = 600.0
DEFAULT_NAMESPACE = "fastgw"

# LiteLLM's call-type names -> fastgw endpoints.
CALL_TYPES: dict[str, str] = {
    "completion": "chat.completions", "acompletion": "chat.completions",
    "text_completion": "completions", "atext_completion": "completions",
    "embedding": "embeddings", "aembedding": "embeddings",
}
ALL_ENDPOINTS = frozenset(CALL_TYPES.values())


class CacheSettingsError(ValueError):
    """A problem in ``litellm_settings.cache*``; the message names the setting."""


@dataclass(frozen=True, slots=True)
class RedisParams:
    url: str | None
    host: str
    port: int
    password: str | None
    username: str | None
    db: int


@dataclass(frozen=True, slots=True)
class CacheSettings:
    type: str  # local | redis
    ttl: float | None
    namespace: str
    max_size_bytes: int
    endpoints: frozenset[str]
    default_on: bool
    redis: RedisParams | None
    socket_timeout: float
    failure_threshold: int
    failure_cooldown: float


def parse_cache_settings(litellm_settings: Mapping[str, Any],
                         environ: Mapping[str, str] | None = None) -> CacheSettings | None:
    """None when caching is off. Raises :class:`CacheSettingsError` naming the bad setting."""
    env = os.environ if environ is None else environ
    if not litellm_settings.get("cache"):
        return None
    params = litellm_settings.get("cache_params") or {}
    if not isinstance(params, Mapping):
        raise CacheSettingsError("litellm_settings.cache_params: must be a mapping")
    where = "litellm_settings.cache_params"
    kind = str(params.get("type") or "local")
    if kind not in ("local", "redis"):
        raise CacheSettingsError(f"{where}.type: {kind!r} is not supported (use local or redis)")
    ttl = _number(params, "ttl", DEFAULT_TTL, where, allow_none=True)
    namespace = params.get("namespace") or DEFAULT_NAMESPACE
    if not isinstance(namespace, str):
        raise CacheSettingsError(f"{where}.namespace: must be a string")
    max_size = int(_number(params, "max_size_bytes", DEFAULT_MAX_SIZE_BYTES, where) or DEFAULT_MAX_SIZE_BYTES)
    call_types = params.get("supported_call_types")
    if call_types is None:
        endpoints = ALL_ENDPOINTS
    else:
        if not isinstance(call_types, list):
            raise CacheSettingsError(f"{where}.supported_call_types: must be a list")
        unknown = [c for c in call_types if c not in CALL_TYPES]
        if unknown:
            raise CacheSettingsError(f"{where}.supported_call_types: unknown call type {unknown[0]!r} "
                                     f"(known: {', '.join(sorted(CALL_TYPES))})")
        endpoints = frozenset(CALL_TYPES[c] for c in call_types)
    mode = params.get("mode") or "default_on"
    if mode not in ("default_on", "default_off"):
        raise CacheSettingsError(f"{where}.mode: must be default_on or default_off")
    redis = _redis_params(params, env, where) if kind == "redis" else None
    return CacheSettings(
        type=kind, ttl=ttl, namespace=namespace, max_size_bytes=max_size, endpoints=endpoints,
        default_on=mode == "default_on", redis=redis,
        socket_timeout=float(_number(params, "socket_timeout", 0.5, where) or 0.5),
        failure_threshold=int(_number(params, "failure_threshold", 3, where) or 3),
        failure_cooldown=float(_number(params, "failure_cooldown", 5.0, where) or 5.0),
    )


def _number(params: Mapping[str, Any], name: str, default: float | None, where: str,
            allow_none: bool = False) -> float | None:
    value = params.get(name, default)
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise CacheSettingsError(f"{where}.{name}: must be a number greater than 0")
    return value


def _redis_params(params: Mapping[str, Any], env: Mapping[str, str], where: str) -> RedisParams:
    """Config first, then LiteLLM's REDIS_* environment variables, then 127.0.0.1:6379."""
    port = params.get("port") or env.get("REDIS_PORT") or 6379
    try:
        port = int(port)
    except (TypeError, ValueError):
        raise CacheSettingsError(f"{where}.port: must be an integer") from None
    db = params.get("db") or 0
    if not isinstance(db, int) and not (isinstance(db, str) and db.isdigit()):
        raise CacheSettingsError(f"{where}.db: must be an integer")
    return RedisParams(
        url=params.get("url") or env.get("REDIS_URL"),
        host=str(params.get("host") or env.get("REDIS_HOST") or "127.0.0.1"),
        port=port,
        password=params.get("password") or env.get("REDIS_PASSWORD"),
        username=params.get("username") or env.get("REDIS_USERNAME"),
        db=int(db),
    )


@dataclass(slots=True)
class CachePlan:
    """What the cache does for one request, decided before the upstream call."""

    key: str
    read: bool  # may be served from the cache
    write: bool  # may store its answer
    ttl: float | None
    max_age: float | None  # accept only entries younger than this (Cache-Control max-age / s-maxage)


def take_control(body: dict) -> dict:
    """Remove the body's ``cache`` object (never sent upstream) and check its shape."""
    control = body.pop("cache", None)
    if control is None:
        return {}
    if not isinstance(control, dict):
        raise bad_request("'cache' must be an object like {\"no-cache\": true}", "cache")
    for flag in ("no-cache", "no-store", "use-cache"):
        if flag in control and not isinstance(control[flag], bool):
            raise bad_request(f"'cache.{flag}' must be a boolean", f"cache.{flag}")
    for name in ("ttl", "s-maxage"):
        value = control.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise bad_request(f"'cache.{name}' must be a number of seconds", f"cache.{name}")
    namespace = control.get("namespace")
    if namespace is not None and (not isinstance(namespace, str) or not namespace):
        raise bad_request("'cache.namespace' must be a non-empty string", "cache.namespace")
    return control


def header_directives(value: str | None) -> dict[str, str | None]:
    """``Cache-Control: no-cache, max-age=30`` -> {"no-cache": None, "max-age": "30"}."""
    out: dict[str, str | None] = {}
    for part in (value or "").split(","):
        name, sep, arg = part.strip().partition("=")
        if name:
            out[name.lower()] = arg.strip().strip('"') if sep else None
    return out


def decide(settings: CacheSettings, key_for: Callable[[str], str], control: dict,
           cache_control: str | None) -> CachePlan:
    """Combine config, body control and header. ``key_for(namespace)`` builds the key."""
    directives = header_directives(cache_control)
    enabled = settings.default_on or control.get("use-cache") is True
    read = enabled and not control.get("no-cache") and "no-cache" not in directives
    write = enabled and not control.get("no-store") and "no-store" not in directives
    max_age = control.get("s-maxage")
    header_age = directives.get("max-age") or directives.get("s-maxage")
    if header_age is not None:
        try:
            max_age = float(header_age)
        except ValueError:
            raise bad_request("Cache-Control max-age must be a number of seconds", None, "invalid_header") from None
    if max_age is not None and max_age <= 0:
        read = False
    ttl = control.get("ttl")
    if ttl is not None:
        ttl = float(ttl) or None
        if ttl is None:
            write = False  # ttl 0: do not keep it
    else:
        ttl = settings.ttl
    namespace = control.get("namespace") or settings.namespace
    return CachePlan(key=key_for(namespace), read=read, write=write, ttl=ttl, max_age=max_age)
