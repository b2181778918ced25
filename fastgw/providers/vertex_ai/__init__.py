"""Vertex AI (Gemini models) native provider: Gemini's format, Google Cloud URLs and OAuth."""
from .provider import VertexAIProvider

__all__ = ["VertexAIProvider"]
