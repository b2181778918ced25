"""OpenAI chat request -> Anthropic Messages request body.

Choices made where the APIs differ (the conformance matrix lists them):

* ``system``/``developer`` messages, wherever they appear, are hoisted into top-level
  ``system``: a plain string when there is one text and no ``cache_control``, else a list
  of text blocks, one per text (which keeps every ``cache_control`` marker).
* ``max_tokens`` is required by Anthropic. Order: ``max_completion_tokens``,
  ``max_tokens``, ``litellm_params.max_tokens``, then :func:`default_max_tokens` (4096 for
  Claude 3.0 models and unknown ids, 8192 for later Claude models; never above
  ``model_info.max_output_tokens``).
* ``temperature`` is clamped to Anthropic's 0..1. When both ``temperature`` and ``top_p``
  are sent, ``top_p`` is dropped with a warning (newer models reject the pair).
* ``response_format`` json_object / json_schema uses a forced tool named
  :data:`JSON_TOOL_NAME` whose input schema is the requested schema; the response side
  returns that tool's input as the message content. This works on every Claude model,
  unlike native ``output_config`` (clients may still send ``output_config`` themselves).
* ``reasoning_effort`` -> ``thinking`` with :data:`THINKING_BUDGETS`; ``max_tokens`` is
  raised to budget + the answer allowance, and ``temperature`` (which must be 1 with
  thinking) is dropped with a warning. A client-sent Anthropic ``thinking`` object wins.
* ``thinking_blocks`` on assistant messages (as returned by this provider) are sent back
  first in the turn, unchanged, so signed thinking round-trips through tool loops.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import orjson

from ...errors import bad_request
from ..base import unsupported
from ..common import reject_or_drop

if TYPE_CHECKING:
    from ...config.schema import Deployment

log = logging.getLogger("fastgw.providers.anthropic")

PROVIDER = "anthropic"
JSON_TOOL_NAME = "fastgw_json_output"
DEFAULT_MAX_TOKENS = 4096
DEFAULT_MAX_TOKENS_NEWER_CLAUDE = 8192
# Thinking budgets per OpenAI reasoning_effort. 1024 is Anthropic's minimum budget.
THINKING_BUDGETS: dict[str, int] = {"minimal": 1024, "low": 1024, "medium": 4096, "high": 16384}

# OpenAI params Anthropic has no equivalent for: 400 unless drop_params.
UNSUPPORTED_PARAMS: tuple[str, ...] = (
    "n", "logprobs", "top_logprobs", "presence_penalty", "frequency_penalty", "logit_bias", "seed",
    "audio", "modalities", "prediction", "web_search_options", "functions", "function_call",
)
# Anthropic-only fields a client may send through an OpenAI request (e.g. ``extra_body``).
PASSTHROUGH_PARAMS: tuple[str, ...] = ("top_k", "output_config", "container", "mcp_servers", "context_management")
_NEUTRAL_VALUES: dict[str, tuple[Any, ...]] = {
    "presence_penalty": (0, 0.0), "frequency_penalty": (0, 0.0), "logit_bias": ({},), "top_logprobs": (0,),
}
_SERVICE_TIERS = {"auto": "auto", "default": "standard_only"}


def default_max_tokens(dep: "Deployment") -> int:
    """What to send when neither the client nor the config set ``max_tokens``."""
    if dep.params.max_tokens:
        return dep.params.max_tokens
    model = dep.model.lower()
    value = DEFAULT_MAX_TOKENS
    if "claude" in model and not _is_claude_3_0(model):
        value = DEFAULT_MAX_TOKENS_NEWER_CLAUDE
    cap = dep.info.max_output_tokens
    return min(value, cap) if cap else value


def _is_claude_3_0(model: str) -> bool:
    return "claude-3-" in model and not any(v in model for v in ("claude-3-5", "claude-3-7"))


def build_messages_body(dep: "Deployment", body: dict) -> dict:
    """The Anthropic body for an OpenAI chat body (``stream`` is set by the caller)."""
    body = _without_neutral_values(body)
    reject_or_drop(dep, body, UNSUPPORTED_PARAMS, PROVIDER)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad_request("messages must be a non-empty array", "messages")
    system, turns = convert_messages(messages, dep)
    out: dict[str, Any] = {"model": dep.model}
    if system:
        out["system"] = system
    out["messages"] = turns
    out["max_tokens"] = _max_tokens(dep, body)
    _sampling(body, out)
    _tools(dep, body, out)
    _thinking(dep, body, out)
    user = body.get("user")
    if isinstance(user, str) and user:
        out["metadata"] = {"user_id": user}
    tier = _SERVICE_TIERS.get(body.get("service_tier") or "")
    if tier:
        out["service_tier"] = tier
    for key in PASSTHROUGH_PARAMS:
        if body.get(key) is not None:
            out[key] = body[key]
    for key, value in (dep.extra or {}).items():
        if key != "extra_headers":
            out.setdefault(key, value)
    return out


def _max_tokens(dep: "Deployment", body: dict) -> int:
    for key in ("max_completion_tokens", "max_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise bad_request(f"{key} must be a positive integer", key)
        return value
    return default_max_tokens(dep)


def _without_neutral_values(body: dict) -> dict:
    """Copy of the body without params set to their no-op value (SDKs send e.g. penalty 0)."""
    body = dict(body)
    for key, neutral in _NEUTRAL_VALUES.items():
        if key in body and any(body[key] == v and type(body[key]) is type(v) for v in neutral):
            del body[key]
    return body


# sampling ------------------------------------------------------------------------------
def _sampling(body: dict, out: dict) -> None:
    temperature = body.get("temperature")
    if temperature is not None:
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
            raise bad_request("temperature must be a number", "temperature")
        out["temperature"] = min(max(float(temperature), 0.0), 1.0)
    top_p = body.get("top_p")
    if top_p is not None:
        if temperature is not None:
            log.warning("anthropic: both temperature and top_p given; dropping top_p (the API rejects the pair)")
        else:
            out["top_p"] = top_p
    stop = body.get("stop")
    if isinstance(stop, str):
        out["stop_sequences"] = [stop]
    elif isinstance(stop, list) and stop:
        if not all(isinstance(s, str) for s in stop):
            raise bad_request("stop must be a string or an array of strings", "stop")
        out["stop_sequences"] = list(stop)
    elif stop is not None and not isinstance(stop, list):
        raise bad_request("stop must be a string or an array of strings", "stop")


# thinking ------------------------------------------------------------------------------
def _thinking(dep: "Deployment", body: dict, out: dict) -> None:
    thinking = body.get("thinking")
    if thinking is None:
        effort = body.get("reasoning_effort")
        if effort is None or effort == "none":
            return
        if effort not in THINKING_BUDGETS:
            raise bad_request(f"reasoning_effort must be one of {', '.join(THINKING_BUDGETS)} or none",
                              "reasoning_effort")
        thinking = {"type": "enabled", "budget_tokens": THINKING_BUDGETS[effort]}
    if not isinstance(thinking, dict):
        raise bad_request("thinking must be an object", "thinking")
    out["thinking"] = thinking
    if thinking.get("type") != "enabled":
        return
    budget = thinking.get("budget_tokens")
    if isinstance(budget, int) and out["max_tokens"] <= budget:
        # The client's max_tokens is read as the allowance for the visible answer.
        raised = budget + out["max_tokens"]
        cap = dep.info.max_output_tokens
        out["max_tokens"] = max(cap, budget + 1) if cap and raised > cap else raised
    if "temperature" in out and out["temperature"] != 1.0:
        log.warning("anthropic: temperature must be 1 with extended thinking; dropping temperature")
        del out["temperature"]
    tool_choice = out.get("tool_choice")
    has_json_tool = any(t.get("name") == JSON_TOOL_NAME for t in out.get("tools") or [])
    if has_json_tool and isinstance(tool_choice, dict) and tool_choice.get("type") in ("any", "tool"):
        # Forced tool use is not allowed with thinking; the JSON tool stays available.
        out["tool_choice"] = {"type": "auto", **{k: v for k, v in tool_choice.items()
                                                if k == "disable_parallel_tool_use"}}


# tools ---------------------------------------------------------------------------------
def _tools(dep: "Deployment", body: dict, out: dict) -> None:
    tools = convert_tools(dep, body.get("tools"))
    tool_choice = convert_tool_choice(body.get("tool_choice"))
    json_schema = _json_schema(body.get("response_format"))
    if json_schema is not None:
        if any(t["name"] == JSON_TOOL_NAME for t in tools):
            raise bad_request(f"tool name {JSON_TOOL_NAME!r} is reserved for response_format", "tools")
        user_tools = bool(tools)
        tools.append(json_schema)
        if tool_choice is None or not user_tools:
            # Alone: force the JSON tool. With client tools: the model must call one of them
            # or answer through the JSON tool.
            tool_choice = {"type": "any"} if user_tools else {"type": "tool", "name": JSON_TOOL_NAME}
    if not tools:
        return
    out["tools"] = tools
    if body.get("parallel_tool_calls") is False:
        tool_choice = dict(tool_choice or {"type": "auto"})
        if tool_choice["type"] != "none":
            tool_choice["disable_parallel_tool_use"] = True
    if tool_choice is not None:
        out["tool_choice"] = tool_choice


def convert_tools(dep: "Deployment", tools: Any) -> list[dict]:
    if tools is None:
        return []
    if not isinstance(tools, list):
        raise bad_request("tools must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise bad_request("each tool must be an object", f"tools[{i}]")
        if tool.get("type", "function") != "function":
            if dep.drop_params:
                continue
            raise unsupported(PROVIDER, f"tools[{i}].type", f"tool type {tool.get('type')!r}")
        fn = tool.get("function")
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise bad_request("tools[].function.name is required", f"tools[{i}].function.name")
        converted: dict[str, Any] = {"name": fn["name"]}
        if fn.get("description"):
            converted["description"] = fn["description"]
        converted["input_schema"] = fn.get("parameters") or {"type": "object", "properties": {}}
        cache_control = tool.get("cache_control") or fn.get("cache_control")
        if cache_control:
            converted["cache_control"] = cache_control
        out.append(converted)
    return out


def convert_tool_choice(choice: Any) -> dict | None:
    if choice is None:
        return None
    if choice == "auto":
        return {"type": "auto"}
    if choice == "none":
        return {"type": "none"}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict):
        fn = choice.get("function")
        if choice.get("type") == "function" and isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {"type": "tool", "name": fn["name"]}
    raise bad_request("tool_choice must be none, auto, required or a named function", "tool_choice")


def _json_schema(response_format: Any) -> dict | None:
    """The forced tool for a JSON response_format, or None for text / absent."""
    if response_format is None:
        return None
    if not isinstance(response_format, dict):
        raise bad_request("response_format must be an object", "response_format")
    kind = response_format.get("type")
    if kind in (None, "text"):
        return None
    description = "Give the final answer by calling this tool; its input is the answer, as JSON."
    if kind == "json_object":
        schema: dict = {"type": "object"}
    elif kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict):
            raise bad_request("response_format.json_schema must be an object", "response_format.json_schema")
        schema = spec.get("schema") or {"type": "object"}
        if spec.get("description"):
            description += " " + str(spec["description"])
    else:
        raise bad_request(f"response_format type {kind!r} is not supported", "response_format.type")
    return {"name": JSON_TOOL_NAME, "description": description, "input_schema": schema}


# messages ------------------------------------------------------------------------------
def convert_messages(messages: list, dep: "Deployment") -> tuple[str | list[dict] | None, list[dict]]:
    """OpenAI messages -> (Anthropic ``system``, Anthropic ``messages``)."""
    system: list[dict] = []
    turns: list[dict] = []
    tool_turn: dict | None = None  # the user turn collecting consecutive tool results
    for i, message in enumerate(messages):
        path = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad_request("each message must be an object", path)
        role = message.get("role")
        if role in ("system", "developer"):
            system.extend(_with_cache_control(_text_blocks(message.get("content"), path), message))
            continue
        if role == "tool":
            block = _tool_result(message, path, dep)
            if tool_turn is None:
                tool_turn = {"role": "user", "content": []}
                turns.append(tool_turn)
            tool_turn["content"].append(block)
            continue
        tool_turn = None
        if role == "user":
            turns.append({"role": "user", "content": _user_content(message, path, dep)})
        elif role == "assistant":
            content = _assistant_content(message, path)
            if content:
                turns.append({"role": "assistant", "content": content})
        else:
            raise bad_request(f"message role {role!r} is not supported by provider 'anthropic'", f"{path}.role")
    return _system_value(system), turns


def _system_value(blocks: list[dict]) -> str | list[dict] | None:
    """One plain text -> a string (the common case); otherwise the blocks, kept apart."""
    if not blocks:
        return None
    if len(blocks) == 1 and "cache_control" not in blocks[0]:
        return blocks[0]["text"]
    return blocks


def _with_cache_control(blocks: list[dict], message: dict) -> list[dict]:
    """A message-level ``cache_control`` marks the message's last block (LiteLLM's convention)."""
    cache_control = message.get("cache_control")
    if cache_control and blocks:
        blocks[-1] = {**blocks[-1], "cache_control": cache_control}
    return blocks


def _text_blocks(content: Any, path: str) -> list[dict]:
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    if not isinstance(content, list):
        raise bad_request("content must be a string or an array of parts", f"{path}.content")
    out = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or part.get("type") not in ("text", "input_text"):
            raise bad_request("only text parts are allowed here", f"{path}.content[{j}]")
        out.append(_text_block(part))
    return out


def _text_block(part: dict) -> dict:
    block = {"type": "text", "text": part.get("text") or ""}
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def _user_content(message: dict, path: str, dep: "Deployment") -> str | list[dict]:
    content = message.get("content")
    if isinstance(content, str) and not message.get("cache_control"):
        return content
    if isinstance(content, str):
        return _with_cache_control([{"type": "text", "text": content}], message)
    if not isinstance(content, list):
        raise bad_request("content must be a string or an array of parts", f"{path}.content")
    blocks = []
    for j, part in enumerate(content):
        block = _user_part(part, f"{path}.content[{j}]", dep)
        if block is not None:
            blocks.append(block)
    return _with_cache_control(blocks, message)


def _user_part(part: Any, path: str, dep: "Deployment") -> dict | None:
    if not isinstance(part, dict):
        raise bad_request("each content part must be an object", path)
    kind = part.get("type")
    if kind in ("text", "input_text"):
        return _text_block(part)
    if kind == "image_url":
        block = image_block(part.get("image_url"), path)
    elif kind == "file":
        block = _file_block(part.get("file"), path)
    else:
        if dep.drop_params:
            return None
        raise unsupported(PROVIDER, path, f"content part type {kind!r}")
    if part.get("cache_control"):
        block["cache_control"] = part["cache_control"]
    return block


def image_block(image_url: Any, path: str) -> dict:
    """``image_url`` (data: URL or http(s) URL) -> an image block; PDFs become documents."""
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str) or not url:
        raise bad_request("image_url.url is required", f"{path}.image_url.url")
    if url.startswith("data:"):
        media_type, data = _split_data_url(url, path)
        kind = "document" if media_type == "application/pdf" else "image"
        return {"type": kind, "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise bad_request("image_url.url must be a data: URL or an http(s) URL", f"{path}.image_url.url")


def _split_data_url(url: str, path: str) -> tuple[str, str]:
    header, sep, data = url.partition(",")
    params = header[5:].split(";")
    if not sep or "base64" not in params[1:]:
        raise bad_request("data: URLs must be base64-encoded", path)
    return params[0] or "application/octet-stream", data


def _file_block(file: Any, path: str) -> dict:
    if not isinstance(file, dict):
        raise bad_request("file must be an object", f"{path}.file")
    data = file.get("file_data")
    if not isinstance(data, str):
        raise unsupported(PROVIDER, f"{path}.file.file_id", "file_id references")
    if not data.startswith("data:"):
        return {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": data}}
    media_type, payload = _split_data_url(data, path)
    block: dict[str, Any] = {"type": "document", "source": {"type": "base64", "media_type": media_type,
                                                             "data": payload}}
    if file.get("filename"):
        block["title"] = file["filename"]
    return block


def _assistant_content(message: dict, path: str) -> str | list[dict]:
    content = message.get("content")
    thinking = message.get("thinking_blocks") or []
    tool_calls = message.get("tool_calls") or []
    if isinstance(content, str) and not thinking and not tool_calls and not message.get("cache_control"):
        return content
    blocks: list[dict] = []
    for j, block in enumerate(thinking):
        blocks.append(_thinking_block(block, f"{path}.thinking_blocks[{j}]"))
    if isinstance(content, str):
        if content:
            blocks.append({"type": "text", "text": content})
    elif isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict):
                raise bad_request("each content part must be an object", f"{path}.content[{j}]")
            if part.get("type") == "refusal":
                text = part.get("refusal") or ""
                block = {"type": "text", "text": text}
            elif part.get("type") in ("text", "output_text"):
                block = _text_block(part)
            else:
                raise bad_request("assistant content parts must be text", f"{path}.content[{j}]")
            if block["text"]:
                blocks.append(block)
    elif content is not None:
        raise bad_request("content must be a string, null or an array of parts", f"{path}.content")
    if not isinstance(tool_calls, list):
        raise bad_request("tool_calls must be an array", f"{path}.tool_calls")
    for j, call in enumerate(tool_calls):
        blocks.append(_tool_use(call, f"{path}.tool_calls[{j}]"))
    return _with_cache_control(blocks, message)


def _thinking_block(block: Any, path: str) -> dict:
    if not isinstance(block, dict):
        raise bad_request("thinking_blocks entries must be objects", path)
    kind = block.get("type")
    if kind == "thinking":
        return {"type": "thinking", "thinking": block.get("thinking") or "", "signature": block.get("signature") or ""}
    if kind == "redacted_thinking":
        return {"type": "redacted_thinking", "data": block.get("data") or ""}
    raise bad_request("thinking_blocks entries must be thinking or redacted_thinking", f"{path}.type")


def _tool_use(call: Any, path: str) -> dict:
    fn = call.get("function") if isinstance(call, dict) else None
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
        raise bad_request("tool call function name is required", f"{path}.function.name")
    arguments = fn.get("arguments")
    if isinstance(arguments, dict):
        parsed: Any = arguments
    elif not arguments:
        parsed = {}
    else:
        try:
            parsed = orjson.loads(arguments)
        except (orjson.JSONDecodeError, TypeError):
            raise bad_request("tool call arguments must be JSON", f"{path}.function.arguments") from None
        if not isinstance(parsed, dict):
            raise bad_request("tool call arguments must be a JSON object", f"{path}.function.arguments")
    block = {"type": "tool_use", "id": call.get("id") or "", "name": fn["name"], "input": parsed}
    if call.get("cache_control"):
        block["cache_control"] = call["cache_control"]
    return block


def _tool_result(message: dict, path: str, dep: "Deployment") -> dict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise bad_request("tool messages need tool_call_id", f"{path}.tool_call_id")
    block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
    content = message.get("content")
    if isinstance(content, str):
        block["content"] = content
    elif isinstance(content, list):
        parts = []
        for j, part in enumerate(content):
            converted = _user_part(part, f"{path}.content[{j}]", dep)
            if converted is not None:
                parts.append(converted)
        block["content"] = parts
    elif content is not None:
        raise bad_request("content must be a string or an array of parts", f"{path}.content")
    if message.get("is_error"):
        block["is_error"] = True
    if message.get("cache_control"):
        block["cache_control"] = message["cache_control"]
    return block


__all__ = ["build_messages_body", "default_max_tokens", "JSON_TOOL_NAME", "THINKING_BUDGETS"]
