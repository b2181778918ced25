"""AWS Signature Version 4 for header-signed requests (what Bedrock Runtime needs).

Written from the SigV4 specification as summarised in the provider reference (section 5.2) and
checked against ``bedrock-sigv4-vector.txt``. No AWS SDK: the gateway signs one JSON POST per
request, which is a few HMACs, and botocore would be a large dependency for that.

The two easy-to-miss rules for Bedrock: the signing name is ``bedrock`` although the host is
``bedrock-runtime...``, and the canonical URI encodes the already-encoded request path a second
time (a model id ``...v1:0`` travels as ``v1%3A0`` and is signed as ``v1%253A0``).
"""
from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Mapping
from urllib.parse import quote, unquote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "bedrock"

# Never signed: the signature itself, headers proxies or the HTTP client may rewrite, and the
# ones botocore leaves out. Anything else we send is signed, so nothing can be altered in transit.
_UNSIGNED_HEADERS = frozenset({
    "authorization", "user-agent", "expect", "x-amzn-trace-id", "connection", "keep-alive",
    "proxy-authorization", "te", "trailer", "transfer-encoding", "upgrade",
})
_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True, slots=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str | None = None


@dataclass(frozen=True, slots=True)
class Signature:
    """Every intermediate value, so tests can compare each step with the published vectors."""

    canonical_request: str
    string_to_sign: str
    scope: str
    signed_headers: str
    signature: str
    authorization: str


def amz_date(now: datetime) -> str:
    """``YYYYMMDDTHHMMSSZ`` in UTC (naive datetimes are taken as UTC)."""
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%SZ")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def host_header(url: str) -> str:
    """The Host value an HTTP client sends for ``url`` (default ports omitted)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme):
        host = f"{host}:{parts.port}"
    return host


def canonical_uri(raw_path: str) -> str:
    """The path as sent, with every byte outside ``A-Za-z0-9-_.~/`` percent-encoded again."""
    return quote(raw_path or "/", safe="/~")


def canonical_query(raw_query: str) -> str:
    """Parameters sorted by encoded name then value, each encoded with the unreserved set."""
    if not raw_query:
        return ""
    pairs = []
    for item in raw_query.split("&"):
        if not item:
            continue
        name, _, value = item.partition("=")
        pairs.append((quote(unquote(name), safe="~"), quote(unquote(value), safe="~")))
    pairs.sort()
    return "&".join(f"{name}={value}" for name, value in pairs)


def canonical_headers(headers: Mapping[str, str], names: list[str]) -> str:
    """``name:value\\n`` per signed header; values trimmed, inner whitespace runs collapsed."""
    lowered = {k.lower(): v for k, v in headers.items()}
    return "".join(f"{name}:{' '.join(str(lowered[name]).split())}\n" for name in names)


def headers_to_sign(headers: Mapping[str, str]) -> list[str]:
    return sorted({k.lower() for k in headers} - _UNSIGNED_HEADERS)


def canonical_request(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str],
                      signed: list[str], payload_hash: str) -> str:
    return "\n".join((
        method.upper(),
        canonical_uri(raw_path),
        canonical_query(raw_query),
        canonical_headers(headers, signed),
        ";".join(signed),
        payload_hash,
    ))


def credential_scope(date: str, region: str, service: str = SERVICE) -> str:
    return f"{date}/{region}/{service}/aws4_request"


def string_to_sign(timestamp: str, scope: str, canonical: str) -> str:
    return "\n".join((ALGORITHM, timestamp, scope, sha256_hex(canonical.encode())))


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


@lru_cache(maxsize=64)
def signing_key(secret_access_key: str, date: str, region: str, service: str = SERVICE) -> bytes:
    """kDate -> kRegion -> kService -> kSigning. Cached: it changes once a day per region."""
    k_date = _hmac(("AWS4" + secret_access_key).encode(), date)
    k_region = _hmac(k_date, region)
    k_service = _hmac(k_region, service)
    return _hmac(k_service, "aws4_request")


def compute_signature(method: str, url: str, headers: Mapping[str, str], body: bytes,
                      credentials: AwsCredentials, region: str, service: str = SERVICE) -> Signature:
    """Sign a request whose ``headers`` already hold host, x-amz-date and any session token."""
    parts = urlsplit(url)
    lowered = {k.lower(): v for k, v in headers.items()}
    timestamp = lowered["x-amz-date"]
    scope = credential_scope(timestamp[:8], region, service)
    signed = headers_to_sign(lowered)
    canonical = canonical_request(method, parts.path, parts.query, lowered, signed, sha256_hex(body))
    to_sign = string_to_sign(timestamp, scope, canonical)
    key = signing_key(credentials.secret_access_key, timestamp[:8], region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed_list = ";".join(signed)
    authorization = (f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
                     f"SignedHeaders={signed_list}, Signature={signature}")
    return Signature(canonical, to_sign, scope, signed_list, signature, authorization)


def sign_headers(method: str, url: str, headers: Mapping[str, str], body: bytes,
                 credentials: AwsCredentials, region: str, now: datetime,
                 service: str = SERVICE) -> dict[str, str]:
    """The headers to send: ``headers`` plus host, x-amz-date, x-amz-security-token (temporary
    credentials; it is signed) and authorization. Names are lowercase."""
    out = {k.lower(): v for k, v in headers.items()}
    out["host"] = host_header(url)
    out["x-amz-date"] = amz_date(now)
    if credentials.session_token:
        out["x-amz-security-token"] = credentials.session_token
    out["authorization"] = compute_signature(method, url, out, body, credentials, region, service).authorization
    return out


# --- verification (mock upstreams and tests) -----------------------------------------------

@dataclass(frozen=True, slots=True)
class AuthorizationHeader:
    access_key_id: str
    date: str
    region: str
    service: str
    signed_headers: list[str]
    signature: str


def parse_authorization(value: str) -> AuthorizationHeader | None:
    """Split an ``AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...`` header."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        return None
    fields = {}
    for item in rest.split(","):
        key, _, val = item.strip().partition("=")
        fields[key] = val
    credential = fields.get("Credential", "").split("/")
    if len(credential) != 5 or credential[4] != "aws4_request" or not fields.get("Signature"):
        return None
    return AuthorizationHeader(credential[0], credential[1], credential[2], credential[3],
                               fields.get("SignedHeaders", "").split(";"), fields["Signature"])


def verify_signature(method: str, raw_path: str, raw_query: str, headers: Mapping[str, str], body: bytes,
                     secrets: Mapping[str, str]) -> bool:
    """Recompute the signature as the server does: from the bytes received and the header list
    the client declared. ``secrets`` maps access key id -> secret access key."""
    lowered = {k.lower(): v for k, v in headers.items()}
    auth = parse_authorization(lowered.get("authorization", ""))
    if auth is None or auth.access_key_id not in secrets:
        return False
    if "host" not in auth.signed_headers or any(name not in lowered for name in auth.signed_headers):
        return False
    timestamp = lowered.get("x-amz-date", "")
    if timestamp[:8] != auth.date:
        return False
    canonical = canonical_request(method, raw_path, raw_query, lowered, auth.signed_headers, sha256_hex(body))
    scope = credential_scope(auth.date, auth.region, auth.service)
    to_sign = string_to_sign(timestamp, scope, canonical)
    key = signing_key(secrets[auth.access_key_id], auth.date, auth.region, auth.service)
    expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, auth.signature)
