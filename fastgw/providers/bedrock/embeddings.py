"""Embeddings on Bedrock: Amazon Titan text models through InvokeModel.

Bedrock has no common embeddings operation; each model family has its own InvokeModel body
(reference 5.6, 10). Only Titan text is documented there (``{"inputText"}`` ->
``{"embedding", "inputTextTokenCount"}``, marked unconfirmed), so only Titan is supported, and
only one input per request because the Titan body takes a single text. Other embedding models
get a clear 400.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import bad_request
from ..base import unsupported
from ..common import reject_or_drop
from ..openai_shapes import embedding_inputs, embeddings_list
from .converse_response import bad_upstream, parse_object
from .endpoint import model_id

if TYPE_CHECKING:
    from ...config.schema import Deployment

PROVIDER = "bedrock"


def is_titan_text(dep: "Deployment") -> bool:
    mid = model_id(dep).lower()
    return "titan-embed" in mid and "image" not in mid


def titan_body(dep: "Deployment", body: dict) -> dict:
    if not is_titan_text(dep):
        raise unsupported(PROVIDER, "model", f"embeddings with model {model_id(dep)!r} (only Amazon Titan text)")
    texts, _ = embedding_inputs(body, PROVIDER)
    if len(texts) != 1:
        raise bad_request("bedrock Titan embeddings take exactly one input per request", "input",
                          "unsupported_parameter")
    out: dict[str, Any] = {"inputText": texts[0]}
    if body.get("dimensions") is not None:
        if "text-v2" in model_id(dep).lower():
            out["dimensions"] = body["dimensions"]
        else:
            reject_or_drop(dep, dict(body), ("dimensions",), PROVIDER)
    return out


def titan_response(dep: "Deployment", data: bytes, body: dict) -> dict:
    upstream = parse_object(data)
    vector = upstream.get("embedding")
    if not isinstance(vector, list):
        raise bad_upstream("Titan response has no embedding")
    tokens = upstream.get("inputTextTokenCount")
    return embeddings_list([vector], dep.model, body.get("encoding_format"), tokens if isinstance(tokens, int) else 0)
