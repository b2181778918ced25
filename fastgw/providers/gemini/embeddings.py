"""OpenAI embeddings <-> Gemini ``embedContent`` / ``batchEmbedContents`` (providers.md 4.6).

A single string goes to ``embedContent``; a list goes to ``batchEmbedContents`` (answers
come back in request order). ``task_type`` and ``title`` (request or config) pass through
as ``taskType`` / ``title``. The Developer API reports no token usage, so usage is an
estimate from the input text.
"""
from __future__ import annotations

from typing import Any

from ...errors import GatewayError
from ..openai_compat import parse_json_object
from ..openai_shapes import embedding_inputs, embeddings_list, estimate_tokens


def embed_options(body: dict) -> dict[str, Any]:
    options: dict[str, Any] = {}
    task_type = body.get("task_type") or body.get("taskType")
    if task_type:
        options["taskType"] = task_type
    if body.get("title"):
        options["title"] = body["title"]
    if body.get("dimensions") is not None:
        options["outputDimensionality"] = body["dimensions"]
    return options


def embed_request(model_path: str, body: dict, provider: str) -> tuple[str, dict]:
    """(method, body) for the request."""
    texts, single = embedding_inputs(body, provider)
    options = embed_options(body)
    if single:
        return "embedContent", {"model": model_path, "content": {"parts": [{"text": texts[0]}]}, **options}
    requests = [{"model": model_path, "content": {"parts": [{"text": t}]}, **options} for t in texts]
    return "batchEmbedContents", {"requests": requests}


def embed_response(provider: str, model: str, data: bytes, body: dict) -> dict:
    response = parse_json_object(provider, data)
    if isinstance(response.get("embedding"), dict):
        vectors = [response["embedding"].get("values") or []]
    elif isinstance(response.get("embeddings"), list):
        vectors = [e.get("values") or [] for e in response["embeddings"]]
    else:
        raise GatewayError(502, f"{provider}: embeddings response has no embedding values", "api_error", None,
                           "bad_upstream_response", retryable=True)
    texts, _ = embedding_inputs(body, provider)
    return embeddings_list(vectors, model, body.get("encoding_format"), estimate_tokens(texts))
