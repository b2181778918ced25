"""Config loading: LiteLLM's format, env references, and errors that name the path."""
from __future__ import annotations

import pytest

from fastgw.config import ConfigError, load_config


def write(tmp_path, text: str):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_litellm_config_loads(tmp_path):
    path = write(tmp_path, """
model_list:
  - model_name: gpt-4o
    litellm_params:
      model: openai/gpt-4o
      api_key: os.environ/TEST_OPENAI_KEY
      rpm: 100
      temperature: 0.2
    model_info:
      id: primary
      input_cost_per_token: 0.0000025
  - model_name: gpt-4o
    litellm_params:
      model: azure/gpt-4o-eu
      api_base: https://example.openai.azure.com
      api_version: "2024-10-21"
      api_key: az
  - model_name: mini
    litellm_params:
      model: gpt-4o-mini
general_settings:
  master_key: sk-1234
router_settings:
  routing_strategy: simple-shuffle
litellm_settings:
  drop_params: true
  success_callback: ["langfuse"]
""")
    loaded = load_config(path, environ={"TEST_OPENAI_KEY": "sk-from-env"})
    deps = loaded.deployments
    assert [d.provider for d in deps] == ["openai", "azure", "openai"]
    assert deps[0].id == "primary" and deps[0].api_key == "sk-from-env"
    assert deps[0].extra == {"temperature": 0.2}, "unknown litellm_params go to the provider"
    assert deps[0].info.input_cost_per_token == 0.0000025
    assert all(d.drop_params for d in deps)
    assert loaded.config.general_settings.master_key == "sk-1234"
    assert any("litellm_settings.success_callback" in w for w in loaded.warnings)


@pytest.mark.parametrize(
    "text, message",
    [
        ("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x}\n"
         "  - model_name: b\n    litellm_params: {model: openai/x}\n"
         "  - model_name: c\n    litellm_params: {model: opnai/gpt-4o}\n",
         'model_list[2].litellm_params.model: unknown provider "opnai"'),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, rpm: lots}\n",
         "model_list[0].litellm_params.rpm: expected `int | null`, got `str`"),
        ("model_list:\n  - litellm_params: {model: openai/x}\n",
         "model_list[0]: object missing required field `model_name`"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: openai/x, api_key: os.environ/NOPE_NOT_SET}\n",
         "model_list[0].litellm_params.api_key: environment variable NOPE_NOT_SET is not set"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: hosted_vllm/llama}\n",
         "model_list[0].litellm_params.api_base: required"),
        ("model_list:\n  - model_name: a\n    litellm_params: {model: some-model}\n",
         "cannot tell the provider"),
        ("model_list: [\n", "invalid YAML"),
        ("general_settings: {database_url: 'postgresql://x'}\n", "general_settings.database_url"),
        ("- just\n- a list\n", "top level must be a mapping"),
    ],
)
def test_errors_name_the_path(tmp_path, text, message):
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), environ={})
    assert message in str(info.value)


def test_embedded_default_uses_mock_provider():
    loaded = load_config(None)
    assert {d.model_name for d in loaded.deployments} >= {"mock-gpt", "mock-embed"}
    assert {d.provider for d in loaded.deployments} == {"mock"}


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")


def test_litellm_retention_settings_load_and_cron_is_reported_as_ignored(tmp_path):
    loaded = load_config(write(tmp_path, """
general_settings:
  maximum_spend_logs_retention_period: "7d"
  maximum_spend_logs_retention_interval: "6h"
  maximum_spend_logs_cleanup_cron: "0 4 * * *"
"""), environ={})
    general = loaded.config.general_settings
    assert (general.maximum_spend_logs_retention_period, general.maximum_spend_logs_retention_interval) == ("7d", "6h")
    assert any("general_settings.maximum_spend_logs_cleanup_cron" in w for w in loaded.warnings)
    assert not any("retention_period" in w or "retention_interval" in w for w in loaded.warnings)


@pytest.mark.parametrize("setting", ["maximum_spend_logs_retention_period", "maximum_spend_logs_retention_interval"])
def test_a_retention_duration_that_cannot_be_used_is_a_config_error(tmp_path, setting):
    with pytest.raises(ConfigError, match=f"general_settings.{setting}: .*months"):
        load_config(write(tmp_path, f"general_settings:\n  {setting}: 1mo\n"), environ={})
    with pytest.raises(ConfigError, match=f"general_settings.{setting}: invalid duration"):
        load_config(write(tmp_path, f"general_settings:\n  {setting}: a week\n"), environ={})
