"""Ollama errors (``{"error": "<text>"}``) -> GatewayError (providers.md 7.4).

404 is an unknown (not pulled) model: ``model_not_found``. There is no rate limiting;
500s are runner failures (retryable).
"""
from __future__ import annotations

from typing import Any, Mapping

import orjson

from ...errors import GatewayError
from ..common import make_error


def ollama_error(provider: str, status: int, headers: Mapping[str, str], data: bytes) -> GatewayError:
    message = f"upstream returned HTTP {status}"
    try:
        body: Any = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and body.get("error"):
        message = str(body["error"])
    code = "model_not_found" if status == 404 else None
    return make_error(status, message, code=code, headers=headers, provider=provider)


def stream_error(provider: str, error: Any) -> GatewayError:
    """An error line inside a 200 stream: a runner failure, reported as a retryable 500."""
    return make_error(500, str(error.get("message") if isinstance(error, dict) else error), provider=provider)
