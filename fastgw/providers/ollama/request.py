"""OpenAI chat request -> Ollama ``/api/chat`` body (providers.md 7.2 and section 8).

Sampling settings go in ``options`` (``max_tokens`` is ``num_predict``); images are a
per-message list of raw base64 strings; tool-call arguments are objects; tool results
name their function (``tool_name``). ``stream`` defaults to true upstream, so only a
non-streaming request says ``"stream": false``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import GatewayError, bad_request
from ..common import reject_or_drop, with_extra_params
from ..openai_shapes import (
    max_output_tokens,
    parse_data_url,
    reject_non_function_tools,
    stop_list,
    tool_arguments,
    tool_names_by_id,
    tool_result_name,
)

if TYPE_CHECKING:
    from ...config.schema import Deployment

UNSUPPORTED = (
    "n", "logprobs", "top_logprobs", "logit_bias", "audio", "modalities", "prediction", "web_search_options",
    "functions", "function_call", "verbosity", "parallel_tool_calls",
)

# OpenAI (or extra) param -> options key
OPTIONS = (
    ("temperature", "temperature"), ("top_p", "top_p"), ("top_k", "top_k"), ("seed", "seed"),
    ("presence_penalty", "presence_penalty"), ("frequency_penalty", "frequency_penalty"), ("num_ctx", "num_ctx"),
)


def build_request(dep: "Deployment", body: dict, provider: str, stream: bool) -> dict:
    body = with_extra_params(dep, dict(body))
    _check_params(dep, body, provider)
    out: dict[str, Any] = {"model": dep.model, "messages": convert_messages(body.get("messages") or [], provider)}
    if not stream:
        out["stream"] = False
    if body.get("tools"):
        out["tools"] = body["tools"]
    options = build_options(body)
    if options:
        out["options"] = options
    fmt = convert_format(body.get("response_format"))
    if fmt is not None:
        out["format"] = fmt
    effort = body.get("reasoning_effort")
    if effort is not None:
        out["think"] = effort != "none"
    if body.get("think") is not None:
        out["think"] = body["think"]
    if body.get("keep_alive") is not None:
        out["keep_alive"] = body["keep_alive"]
    return out


def _check_params(dep: "Deployment", body: dict, provider: str) -> None:
    if body.get("parallel_tool_calls") is True:
        body.pop("parallel_tool_calls")
    choice = body.get("tool_choice")
    if choice == "none":
        body.pop("tools", None)  # Ollama has no tool_choice: not offering tools is "none"
    if choice in (None, "auto", "none"):
        body.pop("tool_choice", None)
    reject_or_drop(dep, body, UNSUPPORTED + ("tool_choice",), provider)
    reject_non_function_tools(body, provider, dep.drop_params)


def build_options(body: dict) -> dict:
    options: dict[str, Any] = {}
    for key, wire in OPTIONS:
        if body.get(key) is not None:
            options[wire] = body[key]
    limit = max_output_tokens(body)
    if limit is not None:
        options["num_predict"] = limit
    stops = stop_list(body.get("stop"))
    if stops:
        options["stop"] = stops
    if isinstance(body.get("options"), dict):
        options.update(body["options"])
    return options


def convert_format(response_format: Any) -> Any:
    if not isinstance(response_format, dict) or response_format.get("type") in (None, "text"):
        return None
    kind = response_format["type"]
    if kind == "json_object":
        return "json"
    if kind == "json_schema":
        return (response_format.get("json_schema") or {}).get("schema") or "json"
    raise bad_request(f"invalid response_format type {kind!r}", "response_format")


# -- messages --------------------------------------------------------------------------


def convert_messages(messages: list[dict], provider: str) -> list[dict]:
    names = tool_names_by_id(messages)
    out = []
    for message in messages:
        role = message.get("role")
        if role in ("system", "developer"):
            out.append({"role": "system", "content": text_and_images(message.get("content"), provider)[0]})
        elif role == "user":
            text, images = text_and_images(message.get("content"), provider)
            entry: dict[str, Any] = {"role": "user", "content": text}
            if images:
                entry["images"] = images
            out.append(entry)
        elif role == "assistant":
            out.append(assistant_message(message, provider))
        elif role in ("tool", "function"):
            text = text_and_images(message.get("content"), provider)[0]
            out.append({"role": "tool", "content": text, "tool_name": tool_result_name(message, names, provider)})
        else:
            raise bad_request(f"unknown message role {role!r}", "messages")
    return out


def text_and_images(content: Any, provider: str) -> tuple[str, list[str]]:
    if content is None or isinstance(content, str):
        return content or "", []
    texts, images = [], []
    for part in content:
        kind = part.get("type")
        if kind in ("text", "input_text", "output_text"):
            texts.append(part.get("text", ""))
        elif kind == "image_url":
            image = part.get("image_url")
            url = str((image.get("url") if isinstance(image, dict) else image) or "")
            data = parse_data_url(url)
            if data is None:
                raise GatewayError(
                    400, f"provider {provider!r} cannot fetch images from {url[:80]!r}: send them as data: URLs (base64)",
                    "invalid_request_error", "messages", "unsupported_parameter",
                )
            images.append(data[1])
        else:
            raise GatewayError(400, f"content part type {kind!r} is not supported by provider {provider!r}",
                               "invalid_request_error", "messages", "unsupported_parameter")
    return "\n".join(texts), images


def assistant_message(message: dict, provider: str) -> dict:
    out: dict[str, Any] = {"role": "assistant", "content": text_and_images(message.get("content"), provider)[0]}
    calls = message.get("tool_calls")
    if calls:
        out["tool_calls"] = [
            {"function": {"name": (c.get("function") or {}).get("name", ""),
                          "arguments": tool_arguments((c.get("function") or {}).get("arguments"), provider)}}
            for c in calls
        ]
    return out
