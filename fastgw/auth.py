"""Who is calling: the master key (or an open gateway), checked in constant time."""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass

from starlette.datastructures import Headers

from .errors import GatewayError


@dataclass(slots=True, frozen=True)
class Principal:
    key_hash: str | None  # sha256 hex of the presented key; never the key itself
    is_admin: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


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
    def __init__(self, master_key: str | None) -> None:
        self._master = master_key.encode() if master_key else None
        self._master_hash = hash_key(master_key) if master_key else None

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
        raise invalid_key()
