"""Who is calling: the master key, a virtual key (issue 5), or anyone on an open gateway.

The master key is compared in constant time. A virtual key is found by the SHA-256 of
the presented value in the in-memory key cache (``Governance.resolve``): the lookup is on
a digest the caller cannot steer, and the stored digest is compared in constant time too.
No database read happens here, so a database outage never turns a valid key into a 401.
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Callable

from starlette.datastructures import Headers

from .errors import GatewayError

if TYPE_CHECKING:
    from .governance.cache import Identity

KeyResolver = Callable[[str], "Identity | None"]  # key hash -> identity, None if unknown; raises 401s


@dataclass(slots=True, frozen=True)
class Principal:
    key_hash: str | None  # sha256 hex of the presented key; never the key itself
    is_admin: bool
    identity: "Identity | None" = None  # a virtual key's key/team/user and limits


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@lru_cache(maxsize=4096)
def _cached_hash(key: str) -> str:
    """Hot keys are hashed once per worker (the process already holds them while serving)."""
    return hash_key(key)


def presented_key(headers: Headers) -> str | None:
    value = headers.get("authorization")
    if value:
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return value.strip() or None
    return headers.get("x-api-key") or headers.get("api-key") or None


def invalid_key() -> GatewayError:
    return GatewayError(401, "Invalid API key. Pass the gateway key as 'Authorization: Bearer <key>'.",
                        "invalid_request_error", None, "invalid_api_key")


class Authenticator:
    def __init__(self, master_key: str | None, resolve_key: KeyResolver | None = None) -> None:
        self._master = master_key.encode() if master_key else None
        self._master_hash = hash_key(master_key) if master_key else None
        self._resolve = resolve_key

    @property
    def open(self) -> bool:
        return self._master is None

    def authenticate(self, headers: Headers) -> Principal:
        key = presented_key(headers)
        if self._master is None:
            return Principal(hash_key(key) if key else None, True)
        if key is None:
            raise GatewayError(401, "Missing API key. Pass the gateway key as 'Authorization: Bearer <key>'.",
                               "invalid_request_error", None, "invalid_api_key")
        if hmac.compare_digest(key.encode(), self._master):
            return Principal(self._master_hash, True)
        if self._resolve is not None:
            digest = _cached_hash(key)
            identity = self._resolve(digest)
            if identity is not None and hmac.compare_digest(identity.key.token, digest):
                return Principal(digest, False, identity)
        raise invalid_key()
