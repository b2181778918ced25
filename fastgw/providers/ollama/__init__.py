"""Ollama native API provider (``ollama/``); ``ollama_chat/`` is its OpenAI-compatible API."""
from .provider import OllamaProvider

__all__ = ["OllamaProvider"]
