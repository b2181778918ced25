from .client import HTTPTransport
from .fast import AutoTransport, FastTransport

__all__ = ["AutoTransport", "FastTransport", "HTTPTransport"]
