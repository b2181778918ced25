"""OpenAI embeddings <-> Cohere ``/v2/embed`` (providers.md 6.6).

``input`` -> ``texts``, ``dimensions`` -> ``output_dimension``; ``input_type`` defaults to
``search_document`` (set ``input_type`` in the request or config to change it). Float
vectors are always requested; OpenAI's base64 format is produced here from them.
"""
from __future__ import annotations

from typing import Any

from ...errors import GatewayError
from ..openai_compat import parse_json_object
from ..openai_shapes import embedding_inputs, embeddings_list

DEFAULT_INPUT_TYPE = "search_document"


def embed_request(model: str, body: dict, provider: str) -> dict:
    texts, _ = embedding_inputs(body, provider)
    out: dict[str, Any] = {
        "model": model,
        "texts": texts,
        "input_type": body.get("input_type") or DEFAULT_INPUT_TYPE,
        "embedding_types": ["float"],
    }
    if body.get("dimensions") is not None:
        out["output_dimension"] = body["dimensions"]
    if body.get("truncate") is not None:
        out["truncate"] = body["truncate"]
    return out


def embed_response(provider: str, model: str, data: bytes, body: dict) -> dict:
    response = parse_json_object(provider, data)
    embeddings = response.get("embeddings")
    vectors = embeddings.get("float") if isinstance(embeddings, dict) else embeddings
    if not isinstance(vectors, list):
        raise GatewayError(502, f"{provider}: embed response has no float embeddings", "api_error", None,
                           "bad_upstream_response", retryable=True)
    tokens = int((((response.get("meta") or {}).get("billed_units") or {}).get("input_tokens")) or 0)
    return embeddings_list(vectors, model, body.get("encoding_format"), tokens)
