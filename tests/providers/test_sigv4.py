"""SigV4 against every vector in ``bedrock-sigv4-vector.txt`` (parsed from the file, so a vector
added there is tested here), plus the encoding rules and the verifier the mock upstream uses."""
from __future__ import annotations

import hashlib
import hmac
import os
import re
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fastgw.providers.bedrock import sigv4

TRANSCRIPTS = Path(os.environ.get("FASTGW_TRANSCRIPTS")
                   or Path(__file__).resolve().parents[3] / "shared" / "reference" / "transcripts")


def _block(text: str, start: str, end: str) -> str:
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def load_vectors() -> list[dict]:
    raw = (TRANSCRIPTS / "bedrock-sigv4-vector.txt").read_text()
    vectors = []
    for section in re.split(r"^=+ VECTOR ", raw, flags=re.M)[1:]:
        fields = dict(re.findall(r"^([A-Za-z0-9_\- ()]+?)\s+=\s+(.+?)\s*$", section, flags=re.M))
        keys = dict(re.findall(r"^(k\w+)\s+=.*=\s+([0-9a-f]{64})$", section, flags=re.M))
        body = section.split("no trailing newline):\n", 1)[1].split("\n", 1)[0]
        headers_block = section.split("headers to send:\n", 1)[1].strip("\n").split("\n")
        vectors.append({
            "name": section.split("\n", 1)[0].strip(" ="),
            "access_key_id": fields["access_key_id"],
            "secret": fields["secret_access_key"],
            "session_token": fields.get("session_token"),
            "region": fields["region"],
            "service": fields["service (signing)"].split()[0],
            "amz_date": fields["x-amz-date"],
            "model_id": fields["model id"],
            "url": fields["request URL"],
            "body": body.encode(),
            "body_sha256": fields["sha256(body)"],
            "canonical_request": _block(section, "----- canonical request (between the markers; lines joined with \\n, "
                                                 "no trailing newline) -----\n", "\n----- end canonical request"),
            "string_to_sign": _block(section, "----- string to sign -----\n", "\n----- end string to sign"),
            "keys": keys,
            "signature": re.search(r"^signature = .* = ([0-9a-f]{64})$", section, flags=re.M).group(1),
            "headers": dict(line.split(": ", 1) for line in headers_block if line.strip()),
        })
    return vectors


VECTORS = load_vectors()


def _signing_inputs(vector: dict) -> dict[str, str]:
    headers = {"content-type": "application/json", "host": sigv4.host_header(vector["url"]),
               "x-amz-date": vector["amz_date"]}
    if vector["session_token"]:
        headers["x-amz-security-token"] = vector["session_token"]
    return headers


def _credentials(vector: dict) -> sigv4.AwsCredentials:
    return sigv4.AwsCredentials(vector["access_key_id"], vector["secret"], vector["session_token"])


def test_vectors_were_found() -> None:
    assert len(VECTORS) >= 2
    assert any(v["session_token"] for v in VECTORS)


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_payload_hash(vector: dict) -> None:
    assert sigv4.sha256_hex(vector["body"]) == vector["body_sha256"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_canonical_request_string_to_sign_and_signature(vector: dict) -> None:
    result = sigv4.compute_signature("POST", vector["url"], _signing_inputs(vector), vector["body"],
                                     _credentials(vector), vector["region"], vector["service"])
    assert result.canonical_request == vector["canonical_request"]
    assert result.string_to_sign == vector["string_to_sign"]
    assert result.signature == vector["signature"]
    assert result.authorization == vector["headers"]["Authorization"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_key_chain(vector: dict) -> None:
    date = vector["amz_date"][:8]
    k_date = hmac.new(("AWS4" + vector["secret"]).encode(), date.encode(), hashlib.sha256).digest()
    assert k_date.hex() == vector["keys"]["kDate"]
    k_region = hmac.new(k_date, vector["region"].encode(), hashlib.sha256).digest()
    assert k_region.hex() == vector["keys"]["kRegion"]
    k_service = hmac.new(k_region, vector["service"].encode(), hashlib.sha256).digest()
    assert k_service.hex() == vector["keys"]["kService"]
    key = sigv4.signing_key(vector["secret"], date, vector["region"], vector["service"])
    assert key.hex() == vector["keys"]["kSigning"]


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_sign_headers_gives_the_headers_to_send(vector: dict) -> None:
    now = datetime.strptime(vector["amz_date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
    headers = sigv4.sign_headers("POST", vector["url"], {"Content-Type": "application/json"}, vector["body"],
                                 _credentials(vector), vector["region"], now)
    assert headers == {k.lower(): v for k, v in vector["headers"].items()}


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_verifier_accepts_the_vector_and_rejects_tampering(vector: dict) -> None:
    headers = {k.lower(): v for k, v in vector["headers"].items()}
    path = vector["url"].split(".com", 1)[1]
    secrets = {vector["access_key_id"]: vector["secret"]}
    assert sigv4.verify_signature("POST", path, "", headers, vector["body"], secrets)
    assert not sigv4.verify_signature("POST", path, "", headers, vector["body"] + b" ", secrets)
    assert not sigv4.verify_signature("POST", path.replace("%3A", ":"), "", headers, vector["body"], secrets)
    assert not sigv4.verify_signature("POST", path, "", headers, vector["body"], {vector["access_key_id"]: "wrong"})
    if vector["session_token"]:
        tampered = dict(headers, **{"x-amz-security-token": "other"})
        assert not sigv4.verify_signature("POST", path, "", tampered, vector["body"], secrets)


def test_model_id_is_double_encoded_in_the_canonical_uri() -> None:
    assert sigv4.canonical_uri("/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse") == \
        "/model/anthropic.claude-3-haiku-20240307-v1%253A0/converse"
    arn = "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2Fus.x/converse"
    assert sigv4.canonical_uri(arn) == arn.replace("%", "%25")
    assert sigv4.canonical_uri("") == "/"
    assert sigv4.canonical_uri("/a b/~x_y.z-") == "/a%20b/~x_y.z-"


def test_canonical_query_sorts_and_encodes() -> None:
    assert sigv4.canonical_query("") == ""
    assert sigv4.canonical_query("b=2&a=x%2Fy&a=1&c") == "a=1&a=x%2Fy&b=2&c="
    assert sigv4.canonical_query("k=a b~") == "k=a%20b~"


def test_canonical_headers_trim_and_collapse_spaces() -> None:
    block = sigv4.canonical_headers({"X-Custom": "  a   b  c ", "host": "h"}, ["host", "x-custom"])
    assert block == "host:h\nx-custom:a b c\n"


def test_host_header_drops_default_ports() -> None:
    assert sigv4.host_header("https://bedrock-runtime.us-east-1.amazonaws.com/model/x") == \
        "bedrock-runtime.us-east-1.amazonaws.com"
    assert sigv4.host_header("https://h.example:443/x") == "h.example"
    assert sigv4.host_header("http://127.0.0.1:8123/x") == "127.0.0.1:8123"


def test_unsigned_headers_are_left_out() -> None:
    names = sigv4.headers_to_sign({"Host": "h", "User-Agent": "u", "X-Amz-Date": "d", "Authorization": "x",
                                   "Content-Type": "c", "Expect": "100-continue"})
    assert names == ["content-type", "host", "x-amz-date"]


def test_amz_date_is_utc() -> None:
    from datetime import timedelta
    local = datetime(2024, 1, 15, 13, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert sigv4.amz_date(local) == "20240115T120000Z"


def test_parse_authorization() -> None:
    auth = sigv4.parse_authorization(VECTORS[1]["headers"]["Authorization"])
    assert auth is not None
    assert (auth.access_key_id, auth.date, auth.region, auth.service) == ("AKIDEXAMPLE", "20240115", "us-west-2",
                                                                          "bedrock")
    assert auth.signed_headers == ["content-type", "host", "x-amz-date", "x-amz-security-token"]
    assert sigv4.parse_authorization("Bearer abc") is None
    assert sigv4.parse_authorization("AWS4-HMAC-SHA256 Credential=a/b, Signature=x") is None
