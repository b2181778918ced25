"""OpenAI chat request -> Cohere v2 ``/v2/chat`` body (providers.md 6.2 and section 8).

Cohere v2 is close to OpenAI: messages and tools keep their shape. Differences handled
here: ``developer`` -> ``system``; assistant text that accompanies tool calls is Cohere's
``tool_plan``; tool results are sent as ``document`` content; ``top_p``/``top_k``/``stop``
are ``p``/``k``/``stop_sequences``; ``tool_choice`` has only REQUIRED/NONE (a named
function becomes REQUIRED with only that tool offered).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import GatewayError, bad_request
from ..common import first_text, reject_or_drop, with_extra_params
from ..openai_shapes import max_output_tokens, reject_non_function_tools, stop_list

if TYPE_CHECKING:
    from ...config.schema import Deployment

# OpenAI params with no Cohere v2 equivalent: 400 unless drop_params. (``logprobs`` exists
# upstream but its response shape is not pinned down in the reference, so it is not offered.)
UNSUPPORTED = (
    "n", "logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction", "web_search_options",
    "functions", "function_call", "verbosity", "parallel_tool_calls",
)

# Native Cohere fields a client or the config may set directly.
PASSTHROUGH = ("safety_mode", "documents", "citation_options", "priority", "strict_tools", "thinking")


def build_request(dep: "Deployment", body: dict, provider: str, stream: bool) -> dict:
    body = with_extra_params(dep, dict(body))
    if body.get("parallel_tool_calls") is True:
        body.pop("parallel_tool_calls")
    reject_or_drop(dep, body, UNSUPPORTED, provider)
    reject_non_function_tools(body, provider, dep.drop_params)
    out: dict[str, Any] = {"model": dep.model}
    if stream:
        out["stream"] = True
    out["messages"] = [convert_message(m, provider) for m in body.get("messages") or ()]
    tools, choice = tools_and_choice(body)
    if tools:
        out["tools"] = tools
        if any((t.get("function") or {}).get("strict") for t in body.get("tools") or ()):
            out["strict_tools"] = True
    if choice:
        out["tool_choice"] = choice
    simple = (("temperature", "temperature"), ("top_p", "p"), ("top_k", "k"), ("seed", "seed"),
              ("frequency_penalty", "frequency_penalty"), ("presence_penalty", "presence_penalty"))
    limit = max_output_tokens(body)
    if limit is not None:
        out["max_tokens"] = limit
    for key, wire in simple:
        if body.get(key) is not None:
            out[wire] = body[key]
    stops = stop_list(body.get("stop"))
    if stops:
        out["stop_sequences"] = stops
    response_format = convert_response_format(body.get("response_format"))
    if response_format:
        out["response_format"] = response_format
    effort = body.get("reasoning_effort")
    if effort is not None:
        out["thinking"] = {"type": "disabled" if effort == "none" else "enabled"}
    for key in PASSTHROUGH:
        if body.get(key) is not None:
            out[key] = body[key]
    return out


# -- messages --------------------------------------------------------------------------


def convert_message(message: dict, provider: str) -> dict:
    role = message.get("role")
    content = message.get("content")
    if role in ("system", "developer"):
        return {"role": "system", "content": first_text(content) if isinstance(content, list) else content or ""}
    if role == "user":
        return {"role": "user", "content": user_content(content, provider)}
    if role == "assistant":
        return assistant_message(message)
    if role == "tool":
        return {"role": "tool", "tool_call_id": message.get("tool_call_id", ""), "content": tool_documents(content)}
    raise bad_request(f"message role {role!r} is not supported by provider {provider!r}", "messages")


def user_content(content: Any, provider: str) -> Any:
    if content is None or isinstance(content, str):
        return content or ""
    parts = []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "input_text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif kind == "image_url":
            image = part.get("image_url")
            parts.append({"type": "image_url", "image_url": image if isinstance(image, dict) else {"url": image}})
        else:
            raise GatewayError(400, f"content part type {kind!r} is not supported by provider {provider!r}",
                               "invalid_request_error", "messages", "unsupported_parameter")
    return parts


def assistant_message(message: dict) -> dict:
    """With tool calls, the accompanying text is Cohere's ``tool_plan``."""
    text = first_text(message.get("content"))
    calls = message.get("tool_calls")
    out: dict[str, Any] = {"role": "assistant"}
    if calls:
        if text:
            out["tool_plan"] = text
        out["tool_calls"] = [
            {"id": c.get("id", ""), "type": "function",
             "function": {"name": (c.get("function") or {}).get("name", ""),
                          "arguments": (c.get("function") or {}).get("arguments") or "{}"}}
            for c in calls
        ]
    else:
        out["content"] = text
    return out


def tool_documents(content: Any) -> list[dict]:
    """Tool output as documents, which Cohere cites in its answer."""
    if isinstance(content, list):
        texts = [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") in ("text", "input_text")]
    else:
        texts = [content or ""]
    return [{"type": "document", "document": {"data": t}} for t in texts]


# -- tools and response_format ----------------------------------------------------------


def tools_and_choice(body: dict) -> tuple[list[dict], str | None]:
    tools = []
    for tool in body.get("tools") or ():
        function = tool.get("function") or {}
        entry: dict[str, Any] = {"name": function.get("name", "")}
        if function.get("description"):
            entry["description"] = function["description"]
        if function.get("parameters") is not None:
            entry["parameters"] = function["parameters"]
        tools.append({"type": "function", "function": entry})
    choice = body.get("tool_choice")
    if not tools or choice in (None, "auto"):
        return tools, None
    if choice == "required":
        return tools, "REQUIRED"
    if choice == "none":
        return tools, "NONE"
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = (choice.get("function") or {}).get("name")
        only = [t for t in tools if t["function"]["name"] == name]
        if not only:
            raise bad_request(f"tool_choice names unknown function {name!r}", "tool_choice")
        return only, "REQUIRED"
    raise bad_request(f"invalid tool_choice {choice!r}", "tool_choice")


def convert_response_format(response_format: Any) -> dict | None:
    if not isinstance(response_format, dict) or response_format.get("type") in (None, "text"):
        return None
    kind = response_format["type"]
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return {"type": "json_object", **({"json_schema": schema} if schema is not None else {})}
    raise bad_request(f"invalid response_format type {kind!r}", "response_format")
