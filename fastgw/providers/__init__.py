"""Provider registry: the prefix of ``litellm_params.model`` selects a module here.

Adding a provider means adding its module and one line below; nothing else changes.
"""
from __future__ import annotations

from .anthropic import AnthropicProvider
from .azure import AzureProvider
from .base import Provider
from .bedrock import BedrockProvider
from .mock import MockProvider
from .openai_compat import PRESETS

PROVIDERS: dict[str, type[Provider]] = {
    **PRESETS,
    "anthropic": AnthropicProvider,
    "azure": AzureProvider,
    "bedrock": BedrockProvider,
    "mock": MockProvider,
}
# Until the native Ollama module lands, "ollama/" uses Ollama's OpenAI-compatible API.
PROVIDERS.setdefault("ollama", PRESETS["ollama_chat"])


def provider_names() -> list[str]:
    return sorted(PROVIDERS)


def create_provider(name: str) -> Provider:
    return PROVIDERS[name]()
