"""OpenAI chat body -> Bedrock Converse body (reference sections 5.3 and 8).

Converse is one request shape for every Bedrock chat model, so this module is the whole
request-side translation. Parameters with no Converse equivalent are rejected (400) unless the
deployment sets ``drop_params``; parameters the gateway does not know go to
``additionalModelRequestFields`` (the model's own fields, e.g. ``top_k``), as LiteLLM does.
"""
from __future__ import annotations

import base64
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

import orjson

from ...errors import GatewayError, bad_request
from ..base import unsupported
from ..common import reject_or_drop, with_extra_params
from .endpoint import model_id

if TYPE_CHECKING:
    from ...config.schema import Deployment

PROVIDER = "bedrock"

# OpenAI parameters Converse cannot express (section 8); ``n`` = 1 and ``logprobs`` = false pass.
UNSUPPORTED = ("n", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "logprobs", "top_logprobs",
               "audio", "modalities", "prediction", "web_search_options", "functions", "function_call", "verbosity")
# OpenAI fields translated below, or with no upstream meaning (identity, streaming options).
HANDLED = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens", "temperature", "top_p",
    "stop", "tools", "tool_choice", "response_format", "reasoning_effort", "service_tier", "parallel_tool_calls",
    "user", "metadata", "store", "safety_identifier", "prompt_cache_key",
    "additionalModelRequestFields", "additional_model_request_fields", *UNSUPPORTED,
})
# Converse top-level fields a config (or client) may set directly; copied unchanged.
PASSTHROUGH = ("guardrailConfig", "performanceConfig", "requestMetadata", "additionalModelResponseFieldPaths",
               "promptVariables", "outputConfig", "serviceTier")

IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/jpg": "jpeg", "image/gif": "gif",
                 "image/webp": "webp"}
DOCUMENT_FORMATS = {
    "application/pdf": "pdf", "text/csv": "csv", "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html", "text/plain": "txt", "text/markdown": "md",
}
# reasoning_effort -> Anthropic ``thinking.budget_tokens`` (must be >= 1024 and < max_tokens);
# the same table as the anthropic provider so a model answers alike through either route.
THINKING_BUDGETS = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}
# Values that ask for nothing: not worth a 400 even without drop_params.
_NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0), "logit_bias": ({},), "top_logprobs": (0,),
}
_THINKING_HEADROOM = 4096
_EMPTY_SCHEMA = {"type": "object", "properties": {}}
_DOC_NAME_BAD = re.compile(r"[^A-Za-z0-9\-()\[\] ]+")


def build_converse_body(dep: "Deployment", body: dict) -> dict:
    """The Converse request for an OpenAI chat body (stream or not: the bodies are identical)."""
    body = with_extra_params(dep, dict(body))
    for key, neutral in _NEUTRAL_VALUES.items():
        if key in body and body[key] in neutral:
            del body[key]
    reject_or_drop(dep, body, UNSUPPORTED, PROVIDER)
    system, messages = convert_messages(body.get("messages") or [])
    out: dict[str, Any] = {}
    if system:
        out["system"] = system
    out["messages"] = messages
    inference = inference_config(body)
    if inference:
        out["inferenceConfig"] = inference
    tool_config = build_tool_config(body, messages)
    if tool_config:
        out["toolConfig"] = tool_config
    for key in PASSTHROUGH:
        if body.get(key) is not None:
            out[key] = body[key]
    tier = body.get("service_tier")
    if tier in ("priority", "default", "flex") and "serviceTier" not in out:
        out["serviceTier"] = {"type": tier}
    output_config = response_format_config(dep, body)
    if output_config:
        out["outputConfig"] = output_config
    additional = additional_fields(dep, body, inference)
    if additional:
        out["additionalModelRequestFields"] = additional
    if inference and not out.get("inferenceConfig"):
        out["inferenceConfig"] = inference
    return out


# --- messages ---------------------------------------------------------------------------------

def convert_messages(messages: list) -> tuple[list[dict], list[dict]]:
    """(system blocks, turns). Consecutive same-role turns merge: Converse requires alternation."""
    system: list[dict] = []
    turns: list[dict] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise bad_request(f"messages[{i}] must be an object", f"messages[{i}]")
        role = message.get("role")
        where = f"messages[{i}]"
        if role in ("system", "developer"):
            system.extend(content_blocks(message.get("content"), where, allow_media=False))
        elif role == "user":
            _append_turn(turns, "user", content_blocks(message.get("content"), where, allow_media=True))
        elif role == "assistant":
            _append_turn(turns, "assistant", assistant_blocks(message, where))
        elif role == "tool":
            _append_turn(turns, "user", [tool_result_block(message, where)])
        else:
            raise bad_request(f"{where}.role {role!r} is not supported by provider 'bedrock'", f"{where}.role")
    return system, turns


def _append_turn(turns: list[dict], role: str, blocks: list[dict]) -> None:
    if not blocks:
        return  # Converse rejects empty and blank content; an empty turn carries nothing anyway
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def content_blocks(content: Any, where: str, *, allow_media: bool) -> list[dict]:
    """OpenAI content (string or parts) -> Converse blocks. ``cache_control`` on a part adds a
    ``cachePoint`` after it (the LiteLLM convention for prompt caching)."""
    if content is None:
        return []
    if isinstance(content, str):
        return [{"text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request(f"{where}.content must be a string or a list of parts", f"{where}.content")
    blocks: list[dict] = []
    for j, part in enumerate(content):
        part_where = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise bad_request(f"{part_where} must be an object", part_where)
        kind = part.get("type")
        if kind in ("text", "input_text"):
            if part.get("text"):
                blocks.append({"text": part["text"]})
        elif kind == "refusal":
            if part.get("refusal"):
                blocks.append({"text": part["refusal"]})
        elif kind == "image_url" and allow_media:
            blocks.append(image_block(part.get("image_url"), part_where))
        elif kind == "file" and allow_media:
            blocks.append(file_block(part.get("file"), part_where, len(blocks) + 1))
        else:
            raise unsupported(PROVIDER, part_where, f"content part type {kind!r}")
        if part.get("cache_control"):
            blocks.append({"cachePoint": {"type": "default"}})
    return blocks


def parse_data_url(url: str, where: str) -> tuple[str, str]:
    """``data:<media>[;base64],<data>`` -> (media type, base64 text)."""
    header, sep, data = url.partition(",")
    if not url.startswith("data:") or not sep:
        raise GatewayError(400, f"{where}: provider 'bedrock' needs inline data (a data: URL); the gateway "
                           "does not download URLs", "invalid_request_error", where, "unsupported_parameter")
    media, *flags = header[5:].split(";")
    if "base64" in flags:
        return media.lower(), data
    return media.lower(), base64.b64encode(unquote_to_bytes(data)).decode()


def image_block(image_url: Any, where: str) -> dict:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise bad_request(f"{where}.image_url.url is required", f"{where}.image_url")
    media, data = parse_data_url(url, where)
    fmt = IMAGE_FORMATS.get(media)
    if fmt is None:
        raise bad_request(f"{where}: image type {media!r} is not supported by bedrock (png, jpeg, gif, webp)", where)
    return {"image": {"format": fmt, "source": {"bytes": data}}}


def file_block(file: Any, where: str, ordinal: int) -> dict:
    if not isinstance(file, dict) or not isinstance(file.get("file_data"), str):
        raise unsupported(PROVIDER, where, "file parts without inline file_data (file_id)")
    media, data = parse_data_url(file["file_data"], where)
    if media in IMAGE_FORMATS:
        return {"image": {"format": IMAGE_FORMATS[media], "source": {"bytes": data}}}
    fmt = DOCUMENT_FORMATS.get(media)
    if fmt is None:
        raise bad_request(f"{where}: file type {media!r} is not supported by bedrock", where)
    return {"document": {"format": fmt, "name": document_name(file.get("filename"), ordinal),
                         "source": {"bytes": data}}}


def document_name(filename: Any, ordinal: int) -> str:
    """Converse names allow letters, digits, spaces, hyphens, parentheses, brackets only."""
    stem = str(filename).rsplit(".", 1)[0] if filename else ""
    name = " ".join(_DOC_NAME_BAD.sub(" ", stem).split())[:200]
    return name or f"document-{ordinal}"


def assistant_blocks(message: dict, where: str) -> list[dict]:
    blocks = content_blocks(message.get("content"), where, allow_media=False)
    for j, call in enumerate(message.get("tool_calls") or []):
        call_where = f"{where}.tool_calls[{j}]"
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not function.get("name"):
            raise bad_request(f"{call_where}.function.name is required", call_where)
        blocks.append({"toolUse": {"toolUseId": call.get("id") or f"call_{j}", "name": function["name"],
                                   "input": parse_arguments(function.get("arguments"), call_where)}})
    return blocks


def parse_arguments(arguments: Any, where: str) -> Any:
    """OpenAI sends tool arguments as JSON text; Converse wants the object."""
    if arguments is None or arguments == "":
        return {}
    if not isinstance(arguments, str):
        return arguments
    try:
        return orjson.loads(arguments)
    except orjson.JSONDecodeError:
        raise bad_request(f"{where}.function.arguments is not valid JSON", f"{where}.function.arguments") from None


def tool_result_block(message: dict, where: str) -> dict:
    """A JSON-object result travels as ``{"json": obj}`` (as the reference transcript shows),
    anything else as text."""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    text = "" if content is None else str(content)
    item: dict = {"text": text}
    if text.startswith("{"):
        try:
            parsed = orjson.loads(text)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            item = {"json": parsed}
    return {"toolResult": {"toolUseId": message.get("tool_call_id") or "", "content": [item], "status": "success"}}


# --- inference and tool configuration ---------------------------------------------------------

def inference_config(body: dict) -> dict:
    config: dict[str, Any] = {}
    max_tokens = body.get("max_completion_tokens")
    if max_tokens is None:
        max_tokens = body.get("max_tokens")
    if max_tokens is not None:
        config["maxTokens"] = max_tokens
    if body.get("temperature") is not None:
        config["temperature"] = min(max(float(body["temperature"]), 0.0), 1.0)  # OpenAI 0-2, Converse 0-1
    if body.get("top_p") is not None:
        config["topP"] = body["top_p"]
    stop = body.get("stop")
    if isinstance(stop, str):
        stop = [stop]
    if stop:
        config["stopSequences"] = list(stop)
    return config


def build_tool_config(body: dict, messages: list[dict]) -> dict | None:
    """``toolConfig``: tools + toolChoice. Converse has no "none" choice, so ``tool_choice: none``
    omits the tools; but a conversation holding toolUse/toolResult blocks must still carry a
    ``toolConfig`` (section 5.3), so then the tools are sent without a choice."""
    tools = body.get("tools") or []
    choice = body.get("tool_choice")
    in_history = tool_names_in_history(messages)
    specs = [tool_spec(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    if not specs and in_history:
        # The client sent no tool definitions but the history uses tools: declare them with an
        # open schema so the upstream accepts the conversation.
        specs = [{"toolSpec": {"name": name, "inputSchema": {"json": dict(_EMPTY_SCHEMA)}}} for name in in_history]
    if not specs:
        return None
    if choice == "none":
        return {"tools": specs} if in_history else None
    config: dict[str, Any] = {"tools": specs}
    converted = tool_choice(choice)
    if converted is not None:
        config["toolChoice"] = converted
    return config


def tool_spec(tool: Any, where: str) -> dict:
    if not isinstance(tool, dict) or tool.get("type", "function") != "function":
        raise unsupported(PROVIDER, where, f"tool type {tool.get('type') if isinstance(tool, dict) else tool!r}")
    function = tool.get("function") or {}
    if not function.get("name"):
        raise bad_request(f"{where}.function.name is required", f"{where}.function.name")
    spec: dict[str, Any] = {"name": function["name"]}
    if function.get("description"):
        spec["description"] = function["description"]
    spec["inputSchema"] = {"json": function.get("parameters") or dict(_EMPTY_SCHEMA)}
    if function.get("strict") is True:
        spec["strict"] = True
    return {"toolSpec": spec}


def tool_choice(choice: Any) -> dict | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"auto": {}}
    if choice == "required":
        return {"any": {}}
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name") if choice.get("type") == "function" else None
        if name:
            return {"tool": {"name": name}}
    raise bad_request(f"tool_choice {choice!r} is not valid", "tool_choice")


def tool_names_in_history(messages: list[dict]) -> list[str]:
    names: list[str] = []
    for message in messages:
        for block in message["content"]:
            use = block.get("toolUse")
            if use and use["name"] not in names:
                names.append(use["name"])
    return names


# --- structured output, reasoning and model-specific fields --------------------------------------

def response_format_config(dep: "Deployment", body: dict) -> dict | None:
    """``json_schema`` -> ``outputConfig.textFormat`` (schema as a JSON string). ``json_object``
    has no Converse switch (prompt-only), so it is unsupported."""
    fmt = body.get("response_format")
    if not isinstance(fmt, dict) or fmt.get("type") in (None, "text"):
        return None
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = spec.get("schema") or dict(_EMPTY_SCHEMA)
        json_schema: dict[str, Any] = {"schema": orjson.dumps(schema).decode(), "name": spec.get("name") or "response"}
        if spec.get("description"):
            json_schema["description"] = spec["description"]
        return {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": json_schema}}}
    if dep.drop_params:
        return None
    raise unsupported(PROVIDER, "response_format", f"response_format {fmt.get('type')!r}")


def is_anthropic(dep: "Deployment") -> bool:
    mid = model_id(dep).lower()
    return "anthropic." in mid or "claude" in mid


def additional_fields(dep: "Deployment", body: dict, inference: dict) -> dict:
    """``additionalModelRequestFields``: an explicit dict, unknown keys (``top_k``, Anthropic
    ``thinking``...) and Anthropic thinking from ``reasoning_effort``."""
    fields: dict[str, Any] = {}
    for key in ("additionalModelRequestFields", "additional_model_request_fields"):
        if isinstance(body.get(key), dict):
            fields.update(body[key])
    for key, value in body.items():
        # ``aws_*`` are LiteLLM credential settings (role, profile...) that reached dep.extra.
        if key not in HANDLED and key not in PASSTHROUGH and not key.startswith("aws_") and value is not None:
            fields[key] = value
    effort = body.get("reasoning_effort")
    if effort is not None and effort != "none":
        if not is_anthropic(dep):
            reject_or_drop(dep, body, ("reasoning_effort",), PROVIDER)
        elif "thinking" not in fields:
            fields["thinking"] = thinking_config(effort, inference)
    return fields


def thinking_config(effort: Any, inference: dict) -> dict:
    """Anthropic's budget must be >= 1024 and below maxTokens; raise maxTokens when unset."""
    budget = THINKING_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise bad_request(f"reasoning_effort {effort!r} is not valid", "reasoning_effort")
    max_tokens = inference.get("maxTokens")
    if max_tokens is None:
        inference["maxTokens"] = budget + _THINKING_HEADROOM
    elif max_tokens <= budget:
        if max_tokens <= THINKING_BUDGETS["low"]:
            raise bad_request("max_tokens must be above 1024 to use reasoning_effort with Anthropic models on bedrock",
                              "max_tokens")
        budget = max_tokens - 1
    return {"type": "enabled", "budget_tokens": budget}
