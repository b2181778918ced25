"""Observability settings from a config: LiteLLM's names, fastgw's own, load-time errors."""
from __future__ import annotations

import msgspec
import pytest

from fastgw.config.schema import Config
from fastgw.observability.settings import ObservabilitySettingsError, parse_observability_settings


def parse(litellm: dict | None = None, general: dict | None = None, env: dict | None = None):
    config = msgspec.convert({"litellm_settings": litellm or {}, "general_settings": general or {}}, Config)
    return parse_observability_settings(config, env or {})


def test_defaults_keep_messages_out():
    s = parse()
    assert not s.include_messages and s.access_log and not s.tracing and s.webhook is None and not s.json_logs


def test_message_logging_is_an_explicit_opt_in():
    assert parse({"turn_off_message_logging": False}).include_messages
    assert not parse({"turn_off_message_logging": True}).include_messages


def test_callbacks():
    s = parse({"callbacks": ["otel", "prometheus"], "success_callback": ["langfuse"]})
    assert s.tracing and s.warnings == ["litellm_settings.success_callback: callback 'langfuse' is not supported "
                                        "by fastgw; it is ignored"]
    hook = parse({"callbacks": ["generic_api"]}, env={"GENERIC_LOGGER_ENDPOINT": "http://h/x"})
    assert hook.webhook is not None and hook.webhook.url == "http://h/x"
    with pytest.raises(ObservabilitySettingsError, match="webhook_url"):
        parse({"callbacks": ["generic_api"]})


def test_webhook_from_general_settings():
    s = parse(general={"webhook_url": "https://x/y", "webhook_headers": {"a": "b"}, "webhook_batch_size": 7})
    assert s.webhook.url == "https://x/y" and s.webhook.headers == {"a": "b"} and s.webhook.batch_size == 7
    with pytest.raises(ObservabilitySettingsError, match="webhook_url"):
        parse(general={"webhook_url": "ftp://x"})
    with pytest.raises(ObservabilitySettingsError, match="webhook_queue_size"):
        parse(general={"webhook_url": "http://x", "webhook_queue_size": 0})


def test_log_level_and_json_logs():
    assert parse({"json_logs": True}, {"log_level": "WARNING"}).log_level == "warning"
    assert parse({"json_logs": True}).json_logs
    with pytest.raises(ObservabilitySettingsError, match="log_level"):
        parse(general={"log_level": "loud"})


def test_loader_reports_bad_settings_as_config_errors(tmp_path):
    from fastgw.config import ConfigError, load_config

    path = tmp_path / "c.yaml"
    path.write_text("litellm_settings:\n  cache: true\n  cache_params: {type: memcached}\n")
    with pytest.raises(ConfigError, match="cache_params.type"):
        load_config(path, environ={})
    path.write_text("litellm_settings:\n  cache: true\n  turn_off_message_logging: true\n  json_logs: false\n"
                    "general_settings:\n  log_level: info\n")
    assert not load_config(path, environ={}).warnings, "settings fastgw acts on are not reported as ignored"
