"""Tool-call ids that carry Gemini's ``thoughtSignature``.

Gemini thinking models attach an opaque ``thoughtSignature`` to ``functionCall`` parts and
expect it back, unchanged, on the same part in the next turn. OpenAI clients only echo
the tool-call id, so the signature rides inside the id (URL-safe base64, no padding, so
the id keeps to ``[A-Za-z0-9_-]``) and is split off again when the history comes back.
"""
from __future__ import annotations

from ..openai_shapes import tool_call_id

SEPARATOR = "__sig__"


def encode_call_id(upstream_id: str | None, signature: str | None) -> str:
    call_id = upstream_id or tool_call_id()
    if not signature:
        return call_id
    urlsafe = signature.replace("+", "-").replace("/", "_").rstrip("=")
    return f"{call_id}{SEPARATOR}{urlsafe}"


def decode_signature(call_id: str | None) -> str | None:
    """The ``thoughtSignature`` hidden in an id made by :func:`encode_call_id`, if any."""
    if not call_id or SEPARATOR not in call_id:
        return None
    urlsafe = call_id.split(SEPARATOR, 1)[1]
    padded = urlsafe + "=" * (-len(urlsafe) % 4)
    return padded.replace("-", "+").replace("_", "/")
