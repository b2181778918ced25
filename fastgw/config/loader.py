"""Load, resolve and validate a config file; every problem becomes one readable line.

Errors name the path of the offending value (``model_list[2].litellm_params.model``) so
a user can fix the file without reading a traceback.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import msgspec
import yaml

from ..cache.policy import CACHE_LITELLM_SETTINGS, CacheSettingsError, parse_cache_settings
from ..observability.settings import (OBSERVABILITY_GENERAL_SETTINGS, OBSERVABILITY_LITELLM_SETTINGS,
                                      ObservabilitySettingsError, parse_observability_settings)
from ..providers import PROVIDERS
from ..router.settings import GENERAL_SETTINGS, LITELLM_SETTINGS, ROUTER_SETTINGS, parse_router_settings
from ..usage.retention import INTERVAL_SETTING, PERIOD_SETTING, parse_retention_settings
from .schema import Config, Deployment, LitellmParams

ENV_PREFIX = "os.environ/"

RETENTION_SETTINGS = (PERIOD_SETTING, INTERVAL_SETTING)

# Settings fastgw acts on. Anything else in these sections is kept and reported once.
SUPPORTED_SETTINGS: dict[str, set[str]] = {
    "general_settings": {"master_key", "database_url", "max_request_size_mb", "usage_log_queue_size",
                         "usage_log_batch_size", "usage_log_flush_interval", *RETENTION_SETTINGS,
                         "budget_unpriced_models", "governance_counter_slots", *GENERAL_SETTINGS,
                         *OBSERVABILITY_GENERAL_SETTINGS},
    "router_settings": set(ROUTER_SETTINGS),
    "litellm_settings": {"drop_params", "request_timeout", *LITELLM_SETTINGS, *CACHE_LITELLM_SETTINGS,
                         *OBSERVABILITY_LITELLM_SETTINGS},
}

# Models named without a "provider/" prefix, as LiteLLM accepts them.
_INFERRED_PROVIDERS = [
    (re.compile(r"^(gpt-|o\d|chatgpt-|text-embedding-|davinci|babbage|omni-)"), "openai"),
    (re.compile(r"^claude-"), "anthropic"),
    (re.compile(r"^gemini-"), "gemini"),
    (re.compile(r"^command"), "cohere"),
]


class ConfigError(Exception):
    """A config problem; ``str()`` is the whole user-facing message."""


@dataclass
class LoadedConfig:
    config: Config
    deployments: list[Deployment]
    source: str
    warnings: list[str] = field(default_factory=list)

    @property
    def database_path(self) -> str:
        url = self.config.general_settings.database_url or "sqlite:///fastgw.db"
        return url[len("sqlite:///"):]


def default_config_text() -> str:
    return resources.files("fastgw.config").joinpath("default.yaml").read_text()


def load_config(path: str | os.PathLike[str] | None = None, environ: dict[str, str] | None = None) -> LoadedConfig:
    env = os.environ if environ is None else environ
    if path is None:
        text, source = default_config_text(), "<embedded default>"
    else:
        source = str(path)
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read config file: {exc.strerror or exc}") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping (model_list, general_settings, ...)")
    for name, value in (raw.get("environment_variables") or {}).items():
        if isinstance(env, dict) or env is os.environ:
            env.setdefault(str(name), str(value))
    raw = _resolve_env(raw, "", env)
    try:
        config = msgspec.convert(raw, Config, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(_validation_message(str(exc))) from None
    warnings = _unsupported_settings(raw)
    deployments = _deployments(config, raw)
    _check_general(config)
    _check_router(config, deployments)
    warnings += _check_cache_and_observability(config, env)
    return LoadedConfig(config, deployments, source, warnings)


def _resolve_env(value: Any, path: str, env: Any) -> Any:
    if isinstance(value, str) and value.startswith(ENV_PREFIX):
        name = value[len(ENV_PREFIX):]
        if name not in env:
            raise ConfigError(f"{path or '<root>'}: environment variable {name} is not set")
        return env[name]
    if isinstance(value, dict):
        return {k: _resolve_env(v, f"{path}.{k}" if path else str(k), env) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve_env(v, f"{path}[{i}]", env) for i, v in enumerate(value)]
    return value


def _validation_message(message: str) -> str:
    """msgspec says "Expected `int`, got `str` - at `$.model_list[0].x`"; lead with the path."""
    text, sep, where = message.rpartition(" - at `")
    if not sep:
        return message
    path = where.rstrip("`").removeprefix("$").lstrip(".") or "<root>"
    text = text[0].lower() + text[1:] if text else text
    return f"{path}: {text}"


def _unsupported_settings(raw: dict) -> list[str]:
    out = []
    for section, supported in SUPPORTED_SETTINGS.items():
        for key in raw.get(section) or {}:
            if key not in supported:
                out.append(f"{section}.{key} is not acted on by fastgw yet; it is ignored")
    return out


def split_model(model: str) -> tuple[str | None, str]:
    if "/" in model:
        provider, _, rest = model.partition("/")
        return provider, rest
    for pattern, provider in _INFERRED_PROVIDERS:
        if pattern.match(model):
            return provider, model
    return None, model


def _deployments(config: Config, raw: dict) -> list[Deployment]:
    global_drop = bool(config.litellm_settings.get("drop_params", False))
    request_timeout = config.litellm_settings.get("request_timeout")
    known = set(LitellmParams.__struct_fields__)
    seen_ids: set[str] = set()
    out = []
    for index, entry in enumerate(config.model_list):
        where = f"model_list[{index}]"
        if not entry.model_name.strip():
            raise ConfigError(f"{where}.model_name: must not be empty")
        params = entry.litellm_params
        provider, model = split_model(params.model)
        if provider is None:
            raise ConfigError(
                f'{where}.litellm_params.model: cannot tell the provider of "{params.model}"; '
                f'write it as "provider/{params.model}" (e.g. "openai/{params.model}")'
            )
        if provider not in PROVIDERS:
            raise ConfigError(f'{where}.litellm_params.model: unknown provider "{provider}" '
                              f"(known: {', '.join(sorted(PROVIDERS))})")
        if not model:
            raise ConfigError(f"{where}.litellm_params.model: missing the model id after \"{provider}/\"")
        provider_cls = PROVIDERS[provider]
        if provider_cls.requires_api_base and not params.api_base:
            raise ConfigError(f"{where}.litellm_params.api_base: required for provider \"{provider}\"")
        for name in ("timeout", "stream_timeout", "rpm", "tpm", "weight", "max_tokens"):
            value = getattr(params, name)
            if value is not None and value <= 0:
                raise ConfigError(f"{where}.litellm_params.{name}: must be greater than 0")
        if params.timeout is None and request_timeout is not None:
            params.timeout = float(request_timeout)
        raw_params = raw["model_list"][index]["litellm_params"]
        extra = {k: v for k, v in raw_params.items() if k not in known}
        dep_id = entry.model_info.id or hashlib.sha256(f"{index}:{entry.model_name}:{params.model}:{params.api_base}".encode()).hexdigest()[:12]
        if dep_id in seen_ids:
            raise ConfigError(f"{where}.model_info.id: duplicate deployment id \"{dep_id}\"")
        seen_ids.add(dep_id)
        out.append(Deployment(
            id=dep_id, model_name=entry.model_name, provider=provider, model=model, params=params,
            info=entry.model_info, extra=extra,
            drop_params=global_drop if params.drop_params is None else params.drop_params,
        ))
    return out


def _check_router(config: Config, deployments: list[Deployment]) -> None:
    try:
        parse_router_settings(config.router_settings, config.litellm_settings, msgspec.structs.asdict(
            config.general_settings), {d.model_name for d in deployments})
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def _check_cache_and_observability(config: Config, env: Any) -> list[str]:
    """Issue 6's settings: errors become ConfigErrors; returns warnings (unknown callbacks)."""
    try:
        parse_cache_settings(config.litellm_settings, env)
        return parse_observability_settings(config, env).warnings
    except (CacheSettingsError, ObservabilitySettingsError) as exc:
        raise ConfigError(str(exc)) from None


def _check_general(config: Config) -> None:
    url = config.general_settings.database_url
    if url is not None and not url.startswith("sqlite:///"):
        raise ConfigError(
            "general_settings.database_url: only sqlite:///PATH URLs are supported "
            f"(got a {url.split(':', 1)[0]!r} URL)"
        )
    if config.general_settings.max_request_size_mb <= 0:
        raise ConfigError("general_settings.max_request_size_mb: must be greater than 0")
    if config.general_settings.budget_unpriced_models not in ("deny", "allow"):
        raise ConfigError('general_settings.budget_unpriced_models: must be "deny" or "allow"')
    try:
        parse_retention_settings(msgspec.structs.asdict(config.general_settings))
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    slots = config.general_settings.governance_counter_slots
    if slots < 64 or slots & (slots - 1):
        raise ConfigError("general_settings.governance_counter_slots: must be a power of two, at least 64")
