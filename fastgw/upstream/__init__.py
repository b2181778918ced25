from .client import HTTPTransport

__all__ = ["HTTPTransport"]
