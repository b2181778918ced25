"""Cohere v2 native provider."""
from .provider import CohereProvider

__all__ = ["CohereProvider"]
