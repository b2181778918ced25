"""Provider registry: the prefix of ``litellm_params.model`` selects a module here.

Adding a provider means adding its module and one line below; nothing else changes.
"""
from __future__ import annotations

from .anthropic import AnthropicProvider
from .azure import AzureProvider
from .base import Provider
from .bedrock import BedrockProvider
from .cohere import CohereProvider
from .gemini import GeminiProvider
from .mock import MockProvider
from .ollama import OllamaProvider
from .openai_compat import PRESETS
from .vertex_ai import VertexAIProvider

PROVIDERS: dict[str, type[Provider]] = {
    **PRESETS,
    "anthropic": AnthropicProvider,
    "azure": AzureProvider,
    "bedrock": BedrockProvider,
    "cohere": CohereProvider,
    "gemini": GeminiProvider,
    "mock": MockProvider,
    "ollama": OllamaProvider,
    "vertex_ai": VertexAIProvider,
}


def provider_names() -> list[str]:
    return sorted(PROVIDERS)


def create_provider(name: str) -> Provider:
    return PROVIDERS[name]()
