"""Virtual keys: made from the OS's CSPRNG, stored only as SHA-256 hashes."""
from __future__ import annotations

import hashlib
import secrets

KEY_PREFIX = "sk-"
KEY_BYTES = 32  # 256 bits of entropy; token_urlsafe makes 43 characters of it


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def hash_key(key: str) -> str:
    """The key's id everywhere (database, usage log, API): hex SHA-256 of the plain key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_name(key: str) -> str:
    """A display form that identifies a key without revealing it (LiteLLM's ``key_name``)."""
    return f"{key[:3]}...{key[-4:]}"


def looks_like_hash(value: str) -> bool:
    return len(value) == 64 and all(c in "0123456789abcdef" for c in value)


def key_id(value: str) -> str:
    """Admin APIs accept a key either plain or as its hash (LiteLLM's ``token``)."""
    return value if looks_like_hash(value) else hash_key(value)
