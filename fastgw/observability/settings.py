"""Observability settings, read from the config once and checked at load time.

LiteLLM's names where it has them (``litellm_settings``)::

    turn_off_message_logging: false    # opt in to prompts/completions in access log and webhook
    json_logs: true                    # every log line as JSON
    callbacks: ["otel", "generic_api"] # (also success_callback / failure_callback)
    require_auth_for_metrics_endpoint: true

fastgw's own (``general_settings``): ``log_level``, ``access_log`` (default true),
``webhook_url`` (or LiteLLM's ``GENERIC_LOGGER_ENDPOINT`` with the generic callback),
``webhook_headers``, ``webhook_batch_size``, ``webhook_flush_interval``,
``webhook_queue_size``, ``webhook_max_retries``. ``/metrics`` is always served.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Mapping

from .logs import LEVELS
from .webhook import WebhookSettings

if TYPE_CHECKING:
    from ..config.schema import Config

# The settings this module acts on (for the loader's "not acted on" report).
OBSERVABILITY_GENERAL_SETTINGS = frozenset({
    "log_level", "access_log", "webhook_url", "webhook_headers", "webhook_batch_size", "webhook_flush_interval",
    "webhook_queue_size", "webhook_max_retries",
})
OBSERVABILITY_LITELLM_SETTINGS = frozenset({
    "turn_off_message_logging", "json_logs", "callbacks", "success_callback", "failure_callback",
    "require_auth_for_metrics_endpoint",
})
TRACING_CALLBACKS = frozenset({"otel"})
WEBHOOK_CALLBACKS = frozenset({"generic", "generic_api", "webhook"})
BUILT_IN_CALLBACKS = frozenset({"prometheus"})  # metrics are always on; accepted for LiteLLM configs
CALLBACK_SETTINGS = ("callbacks", "success_callback", "failure_callback")


class ObservabilitySettingsError(ValueError):
    """A bad observability setting; the message names it."""


@dataclass(frozen=True, slots=True)
class ObservabilitySettings:
    include_messages: bool = False
    access_log: bool = True
    log_level: str | None = None
    json_logs: bool = False
    tracing: bool = False
    webhook: WebhookSettings | None = None
    metrics_require_auth: bool = False
    warnings: list[str] = field(default_factory=list)


def _callbacks(litellm_settings: Mapping[str, Any]) -> dict[str, str]:
    """callback name -> the setting that named it."""
    names: dict[str, str] = {}
    for setting in CALLBACK_SETTINGS:
        value = litellm_settings.get(setting)
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ObservabilitySettingsError(f"litellm_settings.{setting}: must be a list of callback names")
        names.update((name, setting) for name in value)
    return names


def parse_observability_settings(config: "Config", environ: Mapping[str, str]) -> ObservabilitySettings:
    litellm = config.litellm_settings
    general = config.general_settings
    callbacks = _callbacks(litellm)
    known = TRACING_CALLBACKS | WEBHOOK_CALLBACKS | BUILT_IN_CALLBACKS
    warnings = [f"litellm_settings.{setting}: callback {name!r} is not supported by fastgw; it is ignored"
                for name, setting in sorted(callbacks.items()) if name not in known]
    if general.log_level is not None and general.log_level.lower() not in LEVELS:
        raise ObservabilitySettingsError(f"general_settings.log_level: must be one of {', '.join(LEVELS)}")
    webhook_url = general.webhook_url
    if webhook_url is None and WEBHOOK_CALLBACKS.intersection(callbacks):
        webhook_url = environ.get("GENERIC_LOGGER_ENDPOINT")
        if not webhook_url:
            raise ObservabilitySettingsError("litellm_settings.callbacks: the generic webhook callback needs "
                                             "general_settings.webhook_url (or GENERIC_LOGGER_ENDPOINT)")
    webhook = None
    if webhook_url:
        if not webhook_url.startswith(("http://", "https://")):
            raise ObservabilitySettingsError("general_settings.webhook_url: must be an http:// or https:// URL")
        for name in ("webhook_batch_size", "webhook_queue_size", "webhook_flush_interval"):
            if getattr(general, name) <= 0:
                raise ObservabilitySettingsError(f"general_settings.{name}: must be greater than 0")
        if general.webhook_max_retries < 0:
            raise ObservabilitySettingsError("general_settings.webhook_max_retries: must be 0 or more")
        webhook = WebhookSettings(url=webhook_url, headers=dict(general.webhook_headers),
                                  batch_size=general.webhook_batch_size, flush_interval=general.webhook_flush_interval,
                                  queue_size=general.webhook_queue_size, max_retries=general.webhook_max_retries)
    return ObservabilitySettings(
        include_messages=litellm.get("turn_off_message_logging") is False,
        access_log=general.access_log,
        log_level=general.log_level.lower() if general.log_level else None,
        json_logs=bool(litellm.get("json_logs")),
        tracing=bool(TRACING_CALLBACKS.intersection(callbacks)),
        webhook=webhook,
        metrics_require_auth=bool(litellm.get("require_auth_for_metrics_endpoint")),
        warnings=warnings,
    )
