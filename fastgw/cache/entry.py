"""The stored form of an answer: always the non-streamed response object.

Whether the answer came from a streamed or a plain request, it is stored as the
response a non-streamed request gets (``chat.completion``, ``text_completion``, the
embeddings list), so either kind of request can be served from it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import orjson

FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class CacheEntry:
    endpoint: str
    response: dict
    stored_at: float  # unix time

    def age(self) -> float:
        return max(0.0, time.time() - self.stored_at)


def encode_entry(endpoint: str, response: dict) -> bytes:
    return orjson.dumps({"v": FORMAT_VERSION, "endpoint": endpoint, "stored_at": time.time(), "response": response})


def decode_entry(data: bytes) -> CacheEntry | None:
    """None for anything unreadable or from another format version (treated as a miss)."""
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(raw, dict) or raw.get("v") != FORMAT_VERSION or not isinstance(raw.get("response"), dict):
        return None
    return CacheEntry(endpoint=str(raw.get("endpoint")), response=raw["response"],
                      stored_at=float(raw.get("stored_at") or 0.0))
