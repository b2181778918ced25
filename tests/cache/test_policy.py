"""Cache settings (LiteLLM's names) and per-request controls (body ``cache``, Cache-Control)."""
from __future__ import annotations

import pytest

from fastgw.cache.policy import (ALL_ENDPOINTS, CacheSettingsError, decide, header_directives, parse_cache_settings,
                                 take_control)
from fastgw.errors import GatewayError


def settings(**params):
    return parse_cache_settings({"cache": True, "cache_params": params}, environ={})


def plan(control=None, header=None, **params):
    return decide(settings(**params), lambda ns: f"{ns}:k", control or {}, header)


def test_cache_off_unless_enabled():
    assert parse_cache_settings({}, environ={}) is None
    assert parse_cache_settings({"cache": False, "cache_params": {"type": "redis"}}, environ={}) is None


def test_defaults():
    s = settings()
    assert s.type == "local" and s.ttl == 600 and s.namespace == "fastgw" and s.endpoints == ALL_ENDPOINTS
    assert s.default_on and s.redis is None and s.max_size_bytes == 64 * 1024 * 1024


def test_redis_params_from_config_then_environment():
    s = settings(type="redis", host="h", port=7000, password="pw")
    assert (s.redis.host, s.redis.port, s.redis.password) == ("h", 7000, "pw")
    env = parse_cache_settings({"cache": True, "cache_params": {"type": "redis"}},
                               environ={"REDIS_HOST": "eh", "REDIS_PORT": "7001", "REDIS_URL": "redis://x:1"})
    assert (env.redis.host, env.redis.port, env.redis.url) == ("eh", 7001, "redis://x:1")


def test_supported_call_types_map_litellm_names():
    assert settings(supported_call_types=["acompletion"]).endpoints == {"chat.completions"}
    assert settings(supported_call_types=["embedding", "atext_completion"]).endpoints == {"embeddings", "completions"}


@pytest.mark.parametrize("params, where", [
    ({"type": "s3"}, "cache_params.type"),
    ({"ttl": -1}, "cache_params.ttl"),
    ({"ttl": "soon"}, "cache_params.ttl"),
    ({"max_size_bytes": 0}, "cache_params.max_size_bytes"),
    ({"supported_call_types": ["rerank"]}, "cache_params.supported_call_types"),
    ({"mode": "sometimes"}, "cache_params.mode"),
    ({"type": "redis", "port": "x"}, "cache_params.port"),
])
def test_bad_settings_name_the_setting(params, where):
    with pytest.raises(CacheSettingsError, match=where.replace(".", r"\.")):
        settings(**params)


def test_take_control_strips_and_validates():
    body = {"model": "m", "cache": {"no-cache": True, "ttl": 5}}
    assert take_control(body) == {"no-cache": True, "ttl": 5} and "cache" not in body
    assert take_control({"model": "m"}) == {}
    for bad, param in [({"cache": "yes"}, "cache"), ({"cache": {"no-store": "1"}}, "cache.no-store"),
                       ({"cache": {"ttl": -1}}, "cache.ttl"), ({"cache": {"namespace": ""}}, "cache.namespace")]:
        with pytest.raises(GatewayError) as info:
            take_control(bad)
        assert info.value.status == 400 and info.value.param == param


def test_header_directives():
    assert header_directives('No-Cache, max-age="30" ,no-store') == {"no-cache": None, "max-age": "30",
                                                                    "no-store": None}
    assert header_directives(None) == {}


def test_decide_defaults_read_and_write_with_config_ttl():
    p = plan(ttl=30, namespace="team")
    assert (p.read, p.write, p.ttl, p.max_age, p.key) == (True, True, 30, None, "team:k")


def test_body_controls():
    assert not plan({"no-cache": True}).read and plan({"no-cache": True}).write
    assert plan({"no-store": True}).read and not plan({"no-store": True}).write
    assert plan({"ttl": 7}).ttl == 7
    assert not plan({"ttl": 0}).write
    assert plan({"namespace": "mine"}).key == "mine:k"
    assert plan({"s-maxage": 60}).max_age == 60


def test_header_controls():
    assert not plan(header="no-cache").read and plan(header="no-cache").write
    assert not plan(header="no-store").write
    assert plan(header="max-age=20").max_age == 20
    assert not plan(header="max-age=0").read
    with pytest.raises(GatewayError):
        plan(header="max-age=soon")


def test_default_off_mode_needs_use_cache():
    assert not plan(mode="default_off").read and not plan(mode="default_off").write
    opted = plan({"use-cache": True}, mode="default_off")
    assert opted.read and opted.write
