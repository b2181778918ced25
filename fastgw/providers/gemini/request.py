"""OpenAI chat request -> Gemini ``GenerateContentRequest`` (camelCase on the wire).

Mapping follows providers.md section 8. Things Gemini cannot express are rejected with a
400 naming the parameter unless the deployment sets ``drop_params``.
"""
from __future__ import annotations

import mimetypes
from typing import TYPE_CHECKING, Any

import orjson

from ...errors import GatewayError, bad_request
from ..common import reject_or_drop, with_extra_params
from ..openai_shapes import (
    function_tools,
    max_output_tokens,
    parse_data_url,
    reject_non_function_tools,
    stop_list,
    tool_arguments,
    tool_names_by_id,
    tool_result_name,
)
from .signatures import decode_signature

if TYPE_CHECKING:
    from ...config.schema import Deployment

# OpenAI params with no Gemini equivalent: 400 unless drop_params.
UNSUPPORTED = (
    "logit_bias", "audio", "prediction", "web_search_options", "functions", "function_call", "verbosity",
    "parallel_tool_calls",
)

# reasoning_effort -> thinkingBudget, as Google's own OpenAI-compatible endpoint maps it.
EFFORT_BUDGETS = {"none": 0, "minimal": 1024, "low": 1024, "medium": 8192, "high": 24576, "xhigh": 24576}

# Keys of Gemini's OpenAPI-subset ``Schema``; anything else needs ``parametersJsonSchema``.
_OPENAPI_SCHEMA_KEYS = frozenset({
    "type", "format", "title", "description", "nullable", "enum", "maxItems", "minItems", "properties",
    "required", "minProperties", "maxProperties", "minLength", "maxLength", "pattern", "example", "anyOf",
    "propertyOrdering", "default", "items", "minimum", "maximum",
})


def build_request(dep: "Deployment", body: dict, provider: str) -> dict:
    """The full generateContent body for an OpenAI chat request."""
    body = with_extra_params(dep, dict(body))
    _check_params(dep, body, provider)
    system, contents = build_contents(body.get("messages") or [], provider)
    out: dict[str, Any] = {"contents": contents}
    if system:
        out["systemInstruction"] = {"parts": system}
    tools = function_tools(body)
    if tools:
        out["tools"] = [{"functionDeclarations": [function_declaration(f) for f in tools]}]
        tool_config = function_calling_config(body.get("tool_choice"))
        if tool_config is not None:
            out["toolConfig"] = {"functionCallingConfig": tool_config}
    config = generation_config(body)
    if config:
        out["generationConfig"] = config
    for key, wire in (("safety_settings", "safetySettings"), ("safetySettings", "safetySettings"),
                      ("cached_content", "cachedContent"), ("cachedContent", "cachedContent")):
        if body.get(key) is not None:
            out[wire] = body[key]
    return out


def _check_params(dep: "Deployment", body: dict, provider: str) -> None:
    if body.get("parallel_tool_calls") is True:
        body.pop("parallel_tool_calls")  # the default; only ``false`` asks for something Gemini lacks
    modalities = body.get("modalities")
    if modalities is not None and list(modalities) == ["text"]:
        body.pop("modalities")
    else:
        reject_or_drop(dep, body, ("modalities",), provider)
    reject_or_drop(dep, body, UNSUPPORTED, provider)
    reject_non_function_tools(body, provider, dep.drop_params)


# -- messages --------------------------------------------------------------------------


def build_contents(messages: list[dict], provider: str) -> tuple[list[dict], list[dict]]:
    """(systemInstruction parts, contents). Consecutive turns of one role are merged, so
    several ``tool`` messages become one ``user`` turn of functionResponse parts."""
    names = tool_names_by_id(messages)
    system: list[dict] = []
    contents: list[dict] = []

    def add(role: str, parts: list[dict]) -> None:
        if not parts:
            return
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})

    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(text_parts(message.get("content"), provider))
        elif role == "user":
            add("user", user_parts(message.get("content"), provider))
        elif role == "assistant":
            add("model", model_parts(message, provider))
        elif role in ("tool", "function"):
            add("user", [function_response(message, names, provider)])
        else:
            raise bad_request(f"unknown message role {role!r}", "messages")
    return system, contents


def text_parts(content: Any, provider: str) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    parts = []
    for part in content:
        if part.get("type") in ("text", "input_text"):
            parts.append({"text": part.get("text", "")})
        else:
            raise _unsupported_part(part.get("type"), provider)
    return parts


def user_parts(content: Any, provider: str) -> list[dict]:
    if content is None or isinstance(content, str):
        return [{"text": content or ""}]
    parts = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "input_text"):
            parts.append({"text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            parts.append(media_part(str(url or ""), "image/jpeg", provider))
        elif kind == "input_audio":
            audio = part.get("input_audio") or {}
            parts.append({"inlineData": {"mimeType": f"audio/{audio.get('format', 'wav')}", "data": audio.get("data", "")}})
        elif kind == "file" and (part.get("file") or {}).get("file_data"):
            parts.append(media_part(part["file"]["file_data"], "application/pdf", provider))
        else:
            raise _unsupported_part(kind, provider)
    return parts


def media_part(url: str, default_mime: str, provider: str) -> dict:
    """``data:`` URLs are inlined; Files API and ``gs://`` URIs become ``fileData``. Other
    https URLs would need the gateway to download them, which providers never do: 400."""
    data = parse_data_url(url)
    if data is not None:
        return {"inlineData": {"mimeType": data[0], "data": data[1]}}
    if url.startswith("gs://") or url.startswith("https://generativelanguage.googleapis.com/"):
        mime = mimetypes.guess_type(url.split("?", 1)[0])[0] or default_mime
        return {"fileData": {"mimeType": mime, "fileUri": url}}
    raise GatewayError(
        400,
        f"provider {provider!r} cannot fetch media from {url[:80]!r}: send it as a data: URL "
        "(base64), a Gemini Files API URI or a gs:// URI",
        "invalid_request_error", "messages", "unsupported_parameter",
    )


def model_parts(message: dict, provider: str) -> list[dict]:
    content = message.get("content")
    parts = text_parts(content, provider) if not isinstance(content, list) else [
        {"text": p.get("text", "")} for p in content if p.get("type") in ("text", "output_text")
    ]
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        part: dict[str, Any] = {"functionCall": {"name": function.get("name", ""),
                                                 "args": tool_arguments(function.get("arguments"), provider)}}
        signature = decode_signature(call.get("id"))
        if signature:
            part["thoughtSignature"] = signature
        parts.append(part)
    return parts


def function_response(message: dict, names: dict[str, str], provider: str) -> dict:
    """A tool result; JSON-object text is sent as the object, anything else as ``{"content": text}``."""
    name = tool_result_name(message, names, provider)
    content = message.get("content")
    text = content if isinstance(content, str) else "".join(
        p.get("text", "") for p in content or () if isinstance(p, dict)
    )
    response: Any = None
    if text[:1] == "{":
        try:
            response = orjson.loads(text)
        except orjson.JSONDecodeError:
            response = None
    if not isinstance(response, dict):
        response = {"content": text}
    return {"functionResponse": {"name": name, "response": response}}


def _unsupported_part(kind: Any, provider: str) -> GatewayError:
    return GatewayError(400, f"content part type {kind!r} is not supported by provider {provider!r}",
                        "invalid_request_error", "messages", "unsupported_parameter")


# -- tools -----------------------------------------------------------------------------


def function_declaration(function: dict) -> dict:
    """``parameters`` when the schema fits Gemini's OpenAPI subset (what most clients send),
    else ``parametersJsonSchema``, which takes full JSON Schema."""
    out: dict[str, Any] = {"name": function.get("name", "")}
    if function.get("description"):
        out["description"] = function["description"]
    schema = function.get("parameters")
    if isinstance(schema, dict) and not _is_empty_object(schema):
        out["parameters" if fits_openapi_subset(schema) else "parametersJsonSchema"] = schema
    return out


def _is_empty_object(schema: dict) -> bool:
    """A no-argument function; Gemini rejects an OBJECT schema without properties."""
    return (schema.get("type") == "object" and not schema.get("properties")
            and set(schema) <= {"type", "properties", "required", "additionalProperties", "$schema"})


def fits_openapi_subset(schema: Any) -> bool:
    if not isinstance(schema, dict) or not set(schema) <= _OPENAPI_SCHEMA_KEYS:
        return False
    if "type" in schema and not isinstance(schema["type"], str):
        return False
    properties = schema.get("properties", {})
    if not isinstance(properties, dict) or not all(fits_openapi_subset(v) for v in properties.values()):
        return False
    if "items" in schema and not fits_openapi_subset(schema["items"]):
        return False
    return all(fits_openapi_subset(v) for v in schema.get("anyOf", ()))


def function_calling_config(choice: Any) -> dict | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"mode": "AUTO"}
    if choice == "none":
        return {"mode": "NONE"}
    if choice == "required":
        return {"mode": "ANY"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        if name:
            return {"mode": "ANY", "allowedFunctionNames": [name]}
    raise bad_request(f"invalid tool_choice {choice!r}", "tool_choice")


# -- generationConfig ------------------------------------------------------------------


def generation_config(body: dict) -> dict:
    config: dict[str, Any] = {}
    simple = (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK"), ("n", "candidateCount"),
              ("seed", "seed"), ("presence_penalty", "presencePenalty"), ("frequency_penalty", "frequencyPenalty"))
    for key, wire in simple:
        if body.get(key) is not None:
            config[wire] = body[key]
    limit = max_output_tokens(body)
    if limit is not None:
        config["maxOutputTokens"] = limit
    stops = stop_list(body.get("stop"))
    if stops:
        config["stopSequences"] = stops
    if body.get("logprobs"):
        config["responseLogprobs"] = True
        if body.get("top_logprobs") is not None:
            config["logprobs"] = body["top_logprobs"]
    config.update(response_format_config(body.get("response_format")))
    thinking = thinking_config(body)
    if thinking is not None:
        config["thinkingConfig"] = thinking
    native = body.get("generationConfig") or body.get("generation_config")
    if isinstance(native, dict):
        config.update(native)
    return config


def response_format_config(response_format: Any) -> dict:
    """JSON mode -> ``responseMimeType``; a schema goes in ``responseJsonSchema`` as sent
    (Gemini honours a JSON Schema subset and ignores keywords it does not know)."""
    if not isinstance(response_format, dict) or response_format.get("type") in (None, "text"):
        return {}
    kind = response_format["type"]
    if kind == "json_object":
        return {"responseMimeType": "application/json"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        out: dict[str, Any] = {"responseMimeType": "application/json"}
        if schema is not None:
            out["responseJsonSchema"] = schema
        return out
    raise bad_request(f"invalid response_format type {kind!r}", "response_format")


def thinking_config(body: dict) -> dict | None:
    """``reasoning_effort`` (or Anthropic-style ``thinking``) -> ``thinkingConfig``. Thought
    summaries are asked for whenever thinking is on, so they come back as reasoning_content."""
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in EFFORT_BUDGETS:
            raise bad_request(f"invalid reasoning_effort {effort!r}", "reasoning_effort")
        budget = EFFORT_BUDGETS[effort]
        return {"thinkingBudget": 0} if budget == 0 else {"thinkingBudget": budget, "includeThoughts": True}
    thinking = body.get("thinking")
    if isinstance(thinking, dict):
        if thinking.get("type") == "disabled":
            return {"thinkingBudget": 0}
        out: dict[str, Any] = {"includeThoughts": True}
        if thinking.get("budget_tokens") is not None:
            out["thinkingBudget"] = thinking["budget_tokens"]
        return out
    return None
