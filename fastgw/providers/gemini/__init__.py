"""Google Gemini (AI Studio / Generative Language API) native provider."""
from .provider import GeminiProvider

__all__ = ["GeminiProvider"]
