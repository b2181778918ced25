"""Cache keys: equal exactly when the upstream would be asked the same question."""
from __future__ import annotations

from fastgw.cache.keys import cache_key, canonical_request

BODY = {"model": "g", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2}


def key(body: dict, namespace: str = "ns", endpoint: str = "chat.completions", group: str = "g") -> str:
    return cache_key(namespace, endpoint, group, body)


def test_delivery_and_identity_fields_do_not_change_the_key():
    base = key(BODY)
    assert key({**BODY, "stream": True, "stream_options": {"include_usage": True}}) == base
    assert key({**BODY, "user": "alice", "metadata": {"trace": "x"}, "cache": {"ttl": 5}}) == base
    assert key({**BODY, "fallbacks": ["other"], "num_retries": 3, "timeout": 30}) == base


def test_answer_changing_parameters_change_the_key():
    base = key(BODY)
    assert key({**BODY, "temperature": 0.3}) != base
    assert key({**BODY, "max_tokens": 5}) != base
    assert key({**BODY, "tools": [{"type": "function", "function": {"name": "f"}}]}) != base
    assert key({**BODY, "messages": [{"role": "user", "content": "hi!"}]}) != base
    assert key({**BODY, "n": 2}) != base


def test_model_group_endpoint_and_namespace_are_part_of_the_key():
    base = key(BODY)
    assert key(BODY, group="other") != base
    assert key(BODY, endpoint="completions") != base
    assert key(BODY, namespace="other").split(":")[-1] == base.split(":")[-1]
    assert key(BODY, namespace="other").startswith("other:") and base.startswith("ns:")


def test_key_order_and_integral_floats_are_canonical():
    reordered = {"temperature": 0.2, "messages": [{"content": "hi", "role": "user"}], "model": "g"}
    assert key(reordered) == key(BODY)
    assert key({**BODY, "temperature": 1}) == key({**BODY, "temperature": 1.0})
    assert canonical_request("chat.completions", "g", BODY).startswith(b'{"endpoint":"chat.completions"')


def test_key_is_a_sha256_hex_after_the_namespace():
    namespace, digest = key(BODY).rsplit(":", 1)
    assert namespace == "ns" and len(digest) == 64 and int(digest, 16) >= 0
