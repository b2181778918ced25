"""Tests for the compiled request fast path (fastgw._core.request).

The validators' error messages, params and codes are API surface, so besides a table of
hand-picked cases the compiled validators are compared, on thousands of generated bodies,
with a reference copy of the pure-Python validators they replaced (the oracle below). The
prompt they extract is compared the same way with the token counting it replaced.
"""
from __future__ import annotations

import base64
import random
import struct
from collections import OrderedDict

import pytest

from fastgw import tokens, validation
from fastgw._core import request
from fastgw._core.request import Prompt, RequestInfo, validate_chat, validate_completions, validate_embeddings
from fastgw.errors import GatewayError, bad_request
from fastgw.governance import budgets

VALIDATORS = {"chat": validate_chat, "completions": validate_completions, "embeddings": validate_embeddings}
ENDPOINTS = {"chat": "chat.completions", "completions": "completions", "embeddings": "embeddings"}


# --------------------------------------------------------------------------------------------
# Oracle: the rules of the pure-Python validators (fastgw/validation.py before the compiled
# core), kept compact. One deliberate difference: the old role check `role not in ROLES`
# raised TypeError (a 500) for an unhashable role such as a list; the rule it states, "must
# be one of ...", is what the compiled validator applies, so that is what is written here.
# --------------------------------------------------------------------------------------------

ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


def _require_str(body, field):
    value = body.get(field)
    if value is None:
        raise bad_request(f"'{field}' is a required property", field, "missing_required_parameter")
    if not isinstance(value, str) or not value:
        raise bad_request(f"'{field}' must be a non-empty string", field)


def _optional(body, field, types, what):
    value = body.get(field)
    if value is not None and (not isinstance(value, types) or (bool not in types and isinstance(value, bool))):
        raise bad_request(f"'{field}' must be {what}", field)
    return value


def _sampling(body):
    _optional(body, "stream", (bool,), "a boolean")
    for field in ("max_tokens", "max_completion_tokens", "n"):
        value = _optional(body, field, (int,), "an integer")
        if value is not None and value < 1:
            raise bad_request(f"'{field}' must be at least 1", field)
    for field, low, high in (("temperature", 0, 2), ("top_p", 0, 1), ("presence_penalty", -2, 2),
                             ("frequency_penalty", -2, 2)):
        value = _optional(body, field, (int, float), "a number")
        if value is not None and not low <= value <= high:
            raise bad_request(f"'{field}' must be between {low} and {high}", field)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str) and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
        raise bad_request("'stop' must be a string or an array of strings", "stop")
    if _optional(body, "stream_options", (dict,), "an object") is not None and not body.get("stream"):
        raise bad_request("'stream_options' is only allowed when 'stream' is true", "stream_options")


def oracle_chat(body):
    _require_str(body, "model")
    messages = body.get("messages")
    if messages is None:
        raise bad_request("'messages' is a required property", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise bad_request("'messages' must be a non-empty array", "messages")
    for index, message in enumerate(messages):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise bad_request(f"'{where}' must be an object", where)
        role = message.get("role")
        if not isinstance(role, str) or role not in ROLES:  # see the note above
            raise bad_request(f"'{where}.role' must be one of {', '.join(sorted(ROLES))}", f"{where}.role")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):
            raise bad_request(f"'{where}.content' must be a string or an array of content parts", f"{where}.content")
        if content is None and role in ("user", "system", "developer"):
            raise bad_request(f"'{where}.content' is required for role '{role}'", f"{where}.content")
    for index, tool in enumerate(_optional(body, "tools", (list,), "an array") or ()):
        if not isinstance(tool, dict) or not isinstance(tool.get("function") or tool.get("type"), (dict, str)):
            raise bad_request(f"'tools[{index}]' must be a tool object", f"tools[{index}]")
    _sampling(body)


def oracle_completions(body):
    _require_str(body, "model")
    prompt = body.get("prompt")
    if prompt is None:
        raise bad_request("'prompt' is a required property", "prompt", "missing_required_parameter")
    if not isinstance(prompt, (str, list)):
        raise bad_request("'prompt' must be a string or an array", "prompt")
    _sampling(body)


def oracle_embeddings(body):
    _require_str(body, "model")
    inputs = body.get("input")
    if inputs is None:
        raise bad_request("'input' is a required property", "input", "missing_required_parameter")
    if isinstance(inputs, str):
        if not inputs:
            raise bad_request("'input' must not be an empty string", "input")
    elif isinstance(inputs, list):
        if not inputs:
            raise bad_request("'input' must not be an empty array", "input")
        if len(inputs) > 2048:
            raise bad_request("'input' may hold at most 2048 items", "input")
        for index, item in enumerate(inputs):
            if not ((isinstance(item, str) and item) or (isinstance(item, int) and not isinstance(item, bool))
                    or (isinstance(item, list) and item and all(isinstance(t, int) for t in item))):
                raise bad_request(f"'input[{index}]' must be a non-empty string or an array of token ids",
                                  f"input[{index}]")
    else:
        raise bad_request("'input' must be a string or an array", "input")
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise bad_request("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    dims = _optional(body, "dimensions", (int,), "an integer")
    if dims is not None and dims < 1:
        raise bad_request("'dimensions' must be at least 1", "dimensions")


ORACLES = {"chat": oracle_chat, "completions": oracle_completions, "embeddings": oracle_embeddings}


def oracle_chat_tokens(enc, messages, tools) -> int:
    """The message walk of fastgw.tokens.count_message_tokens before the compiled extraction."""
    def content_tokens(content):
        if isinstance(content, str):
            return enc.count(content)
        n = 0
        for part in content if isinstance(content, list) else ():
            if isinstance(part, str):
                n += enc.count(part)
            elif isinstance(part, dict) and part.get("type") in ("image_url", "input_image", "image"):
                n += tokens._image_part_tokens(part)
            elif isinstance(part, dict):
                text = part.get("refusal") if part.get("text") is None else part.get("text")
                n += enc.count(text) if isinstance(text, str) else 0
        return n

    def function_tokens(function):
        if not isinstance(function, dict):
            return 0
        return sum(enc.count(function[k]) for k in ("name", "arguments") if isinstance(function.get(k), str))

    total = tokens.TOKENS_REPLY_PRIMING
    for message in messages:
        total += tokens.TOKENS_PER_MESSAGE
        for key, value in message.items() if isinstance(message, dict) else ():
            if value is None:
                continue
            if key == "content":
                total += content_tokens(value)
            elif isinstance(value, str):
                total += enc.count(value) + (tokens.TOKENS_PER_NAME if key == "name" else 0)
            elif key == "tool_calls" and isinstance(value, list):
                total += sum(function_tokens(call.get("function")) for call in value if isinstance(call, dict))
            elif key == "function_call":
                total += function_tokens(value)
    if tools:
        total += enc.count(tokens._render_tools(tools)) + tokens.TOOLS_OVERHEAD_TOKENS
    return total


def oracle_text_tokens(model, value) -> tuple[int, bool]:
    """budgets.prompt_tokens for completions/embeddings before the compiled extraction."""
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list):
        items = [value] if value and all(isinstance(v, int) for v in value) else [v for v in value if isinstance(v, (str, list))]
    else:
        items = []
    n, exact = 0, True
    for item in items:
        if isinstance(item, str):
            count = tokens.count_text_tokens(model, item)
            n, exact = n + count.tokens, exact and count.exact
        else:
            n += len(item)
    return n, exact


def outcome(fn, body):
    try:
        result = fn(body)
    except GatewayError as err:
        return ("error", err.status, err.message, err.type, err.param, err.code)
    return ("ok",) if result is None or isinstance(result, RequestInfo) else ("??", result)


# --------------------------------------------------------------------------------------------
# Valid bodies: extracted fields
# --------------------------------------------------------------------------------------------

def _png(width: int, height: int) -> str:
    head = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(">II", width, height) + b"\x08\x06\x00\x00\x00"
    return "data:image/png;base64," + base64.b64encode(head + b"\x00" * 40).decode()


def test_chat_fields_and_prompt():
    image = {"type": "image_url", "image_url": {"url": _png(1024, 1024)}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    body = {
        "model": "gpt-4o", "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 10,
        "max_completion_tokens": 20, "n": 2, "temperature": 0, "top_p": 1, "stop": ["\n"], "tools": tools,
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "name": "ann", "content": ["hi", {"type": "text", "text": "look"}, image,
                                                       {"type": "refusal", "refusal": "no"}, 7, None]},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}, "junk"]},
            {"role": "tool", "tool_call_id": "c1", "content": None},
            {"role": "function", "name": "g", "content": "1", "function_call": {"name": "g", "arguments": 5}},
        ],
    }
    info = validate_chat(body)
    assert (info.body, info.model, info.stream, info.include_usage) == (body, "gpt-4o", True, True)
    assert info.body is body and info.tools is tools
    assert (info.max_tokens, info.max_completion_tokens, info.n) == (10, 20, 2)
    prompt = info.prompt
    assert isinstance(prompt, Prompt) and prompt.chat
    assert (prompt.messages, prompt.names, prompt.token_ids) == (5, 2, 0)
    assert prompt.images == [image]
    assert prompt.texts == ["system", "Be brief.", "user", "ann", "hi", "look", "no", "assistant", "f", "{}",
                            "tool", "c1", "function", "g", "1", "g"]
    expected = oracle_chat_tokens(tokens.get_encoding("o200k_base"), body["messages"], tools)
    assert tokens.count_prompt("gpt-4o", prompt, info.tools) == tokens.TokenCount(expected, True, "o200k_base")
    assert tokens.count_message_tokens("gpt-4o", body["messages"], tools).tokens == expected


def test_chat_defaults():
    info = validate_chat({"model": "m", "messages": [{"role": "assistant"}], "stream": False})
    assert (info.stream, info.include_usage, info.max_tokens, info.max_completion_tokens, info.n, info.tools) == (
        False, False, None, None, None, None)
    assert info.prompt.texts == ["assistant"]
    info = validate_chat({"model": "m", "messages": [{"role": "user", "content": ""}], "stream": True,
                          "stream_options": {"include_usage": False}, "tools": []})
    assert (info.stream, info.include_usage, info.tools) == (True, False, [])
    assert validate_chat({"model": "m", "messages": [{"role": "user", "content": "x"}], "max_tokens": 10 ** 30}
                         ).max_tokens == 10 ** 30


def test_completions_and_embeddings_prompts():
    info = validate_completions({"model": "m", "prompt": [1, 2, 3], "stream": True, "stream_options": {}})
    assert (info.stream, info.include_usage, info.prompt.chat, info.prompt.token_ids, info.prompt.texts) == (
        True, False, False, 3, [])
    info = validate_completions({"model": "m", "prompt": ["ab", [1, 2], {"x": 1}, 5], "max_tokens": 3})
    assert (info.max_tokens, info.prompt.texts, info.prompt.token_ids) == (3, ["ab"], 2)
    info = validate_embeddings({"model": "m", "input": ["a", "b"], "stream": True, "max_tokens": 0})
    assert (info.stream, info.include_usage, info.max_tokens) == (False, False, None), "embeddings never stream"
    assert info.prompt.texts == ["a", "b"]
    assert validate_embeddings({"model": "m", "input": [[1, 2], [3]]}).prompt.token_ids == 3
    assert validate_embeddings({"model": "m", "input": "x", "encoding_format": "base64", "dimensions": 8}).prompt.texts == ["x"]


def test_validation_module_delegates_to_the_compiled_core():
    assert validation.validate_chat is validate_chat
    assert validation.validate_completions is validate_completions
    assert validation.validate_embeddings is validate_embeddings
    assert request.ROLES == ROLES


# --------------------------------------------------------------------------------------------
# Invalid bodies: the exact error each one gets
# --------------------------------------------------------------------------------------------

def chat(**fields):
    return {"model": "m", "messages": [{"role": "user", "content": "x"}], **fields}


MISSING = "missing_required_parameter"
ROLE_ERROR = "must be one of assistant, developer, function, system, tool, user"
INVALID = [
    ("chat", {}, "'model' is a required property", "model", MISSING),
    ("chat", {"model": None, "messages": []}, "'model' is a required property", "model", MISSING),
    ("chat", {"model": "", "messages": []}, "'model' must be a non-empty string", "model", "invalid_value"),
    ("chat", {"model": 5}, "'model' must be a non-empty string", "model", "invalid_value"),
    ("chat", {"model": "m"}, "'messages' is a required property", "messages", MISSING),
    ("chat", {"model": "m", "messages": []}, "'messages' must be a non-empty array", "messages", "invalid_value"),
    ("chat", {"model": "m", "messages": {"role": "user"}}, "'messages' must be a non-empty array", "messages",
     "invalid_value"),
    ("chat", {"model": "m", "messages": ["hi"]}, "'messages[0]' must be an object", "messages[0]", "invalid_value"),
    ("chat", {"model": "m", "messages": [{"role": "wizard", "content": "x"}]}, f"'messages[0].role' {ROLE_ERROR}",
     "messages[0].role", "invalid_value"),
    ("chat", {"model": "m", "messages": [{"role": "user", "content": "x"}, {"content": "x"}]},
     f"'messages[1].role' {ROLE_ERROR}", "messages[1].role", "invalid_value"),
    ("chat", {"model": "m", "messages": [{"role": ["user"], "content": "x"}]}, f"'messages[0].role' {ROLE_ERROR}",
     "messages[0].role", "invalid_value"),
    ("chat", {"model": "m", "messages": [{"role": "assistant", "content": 5}]},
     "'messages[0].content' must be a string or an array of content parts", "messages[0].content", "invalid_value"),
    ("chat", {"model": "m", "messages": [{"role": "user", "content": {"type": "text"}}]},
     "'messages[0].content' must be a string or an array of content parts", "messages[0].content", "invalid_value"),
    ("chat", {"model": "m", "messages": [{"role": "user", "content": None}]},
     "'messages[0].content' is required for role 'user'", "messages[0].content", "invalid_value"),
    ("chat", {"model": "m", "messages": [{"role": "tool", "content": None}, {"role": "developer"}]},
     "'messages[1].content' is required for role 'developer'", "messages[1].content", "invalid_value"),
    ("chat", chat(tools={}), "'tools' must be an array", "tools", "invalid_value"),
    ("chat", chat(tools=[{"type": "function", "function": {}}, 5]), "'tools[1]' must be a tool object", "tools[1]",
     "invalid_value"),
    ("chat", chat(tools=[{"function": {}}]), "'tools[0]' must be a tool object", "tools[0]", "invalid_value"),
    ("chat", chat(tools=[{"function": 5, "type": "function"}]), "'tools[0]' must be a tool object", "tools[0]",
     "invalid_value"),
    ("chat", chat(stream="yes"), "'stream' must be a boolean", "stream", "invalid_value"),
    ("chat", chat(stream=1), "'stream' must be a boolean", "stream", "invalid_value"),
    ("chat", chat(max_tokens=True), "'max_tokens' must be an integer", "max_tokens", "invalid_value"),
    ("chat", chat(max_tokens=0), "'max_tokens' must be at least 1", "max_tokens", "invalid_value"),
    ("chat", chat(max_completion_tokens=1.0), "'max_completion_tokens' must be an integer", "max_completion_tokens",
     "invalid_value"),
    ("chat", chat(n=-(10 ** 30)), "'n' must be at least 1", "n", "invalid_value"),
    ("chat", chat(temperature=True), "'temperature' must be a number", "temperature", "invalid_value"),
    ("chat", chat(temperature=2.5), "'temperature' must be between 0 and 2", "temperature", "invalid_value"),
    ("chat", chat(temperature=float("nan")), "'temperature' must be between 0 and 2", "temperature", "invalid_value"),
    ("chat", chat(top_p=1.01), "'top_p' must be between 0 and 1", "top_p", "invalid_value"),
    ("chat", chat(top_p=10 ** 30), "'top_p' must be between 0 and 1", "top_p", "invalid_value"),
    ("chat", chat(presence_penalty=-3), "'presence_penalty' must be between -2 and 2", "presence_penalty",
     "invalid_value"),
    ("chat", chat(frequency_penalty="1"), "'frequency_penalty' must be a number", "frequency_penalty",
     "invalid_value"),
    ("chat", chat(stop=5), "'stop' must be a string or an array of strings", "stop", "invalid_value"),
    ("chat", chat(stop=["a", 1]), "'stop' must be a string or an array of strings", "stop", "invalid_value"),
    ("chat", chat(stream=True, stream_options=[]), "'stream_options' must be an object", "stream_options",
     "invalid_value"),
    ("chat", chat(stream_options={}), "'stream_options' is only allowed when 'stream' is true", "stream_options",
     "invalid_value"),
    ("chat", chat(stream=False, stream_options={"include_usage": True}),
     "'stream_options' is only allowed when 'stream' is true", "stream_options", "invalid_value"),
    ("chat", chat(max_tokens=0, temperature=9), "'max_tokens' must be at least 1", "max_tokens", "invalid_value"),
    ("completions", {"model": "m"}, "'prompt' is a required property", "prompt", MISSING),
    ("completions", {"model": "m", "prompt": 5}, "'prompt' must be a string or an array", "prompt", "invalid_value"),
    ("completions", {"model": "m", "prompt": "x", "n": 0}, "'n' must be at least 1", "n", "invalid_value"),
    ("completions", {"prompt": "x"}, "'model' is a required property", "model", MISSING),
    ("embeddings", {"model": "m"}, "'input' is a required property", "input", MISSING),
    ("embeddings", {"model": "m", "input": ""}, "'input' must not be an empty string", "input", "invalid_value"),
    ("embeddings", {"model": "m", "input": []}, "'input' must not be an empty array", "input", "invalid_value"),
    ("embeddings", {"model": "m", "input": ["a"] * 2049}, "'input' may hold at most 2048 items", "input",
     "invalid_value"),
    ("embeddings", {"model": "m", "input": ["a", ""]},
     "'input[1]' must be a non-empty string or an array of token ids", "input[1]", "invalid_value"),
    ("embeddings", {"model": "m", "input": [True]},
     "'input[0]' must be a non-empty string or an array of token ids", "input[0]", "invalid_value"),
    ("embeddings", {"model": "m", "input": [[1], []]},
     "'input[1]' must be a non-empty string or an array of token ids", "input[1]", "invalid_value"),
    ("embeddings", {"model": "m", "input": [[1, "a"]]},
     "'input[0]' must be a non-empty string or an array of token ids", "input[0]", "invalid_value"),
    ("embeddings", {"model": "m", "input": {"text": "a"}}, "'input' must be a string or an array", "input",
     "invalid_value"),
    ("embeddings", {"model": "m", "input": "a", "encoding_format": "hex"},
     "'encoding_format' must be 'float' or 'base64'", "encoding_format", "invalid_value"),
    ("embeddings", {"model": "m", "input": "a", "dimensions": 0}, "'dimensions' must be at least 1", "dimensions",
     "invalid_value"),
    ("embeddings", {"model": "m", "input": "a", "dimensions": True}, "'dimensions' must be an integer", "dimensions",
     "invalid_value"),
]


@pytest.mark.parametrize("endpoint, body, message, param, code", INVALID)
def test_invalid_bodies(endpoint, body, message, param, code):
    with pytest.raises(GatewayError) as info:
        VALIDATORS[endpoint](body)
    err = info.value
    assert (err.status, err.message, err.type, err.param, err.code) == (400, message, "invalid_request_error", param,
                                                                         code)
    if endpoint != "chat" or body.get("messages") != [{"role": ["user"], "content": "x"}]:
        assert outcome(ORACLES[endpoint], body) == outcome(VALIDATORS[endpoint], body), "the table agrees with the oracle"


@pytest.mark.parametrize("body", [
    chat(),
    {"model": "m", "messages": [{"role": "tool", "tool_call_id": "c", "content": None}]},
    {"model": "m", "messages": [{"role": "assistant", "content": []}], "tools": [{"type": ""}]},
    chat(tools=[{"function": "f"}, {"function": 0, "type": "function"}], stop="\n", temperature=2, top_p=0.0),
    chat(stream=True, stream_options={}, presence_penalty=-2, frequency_penalty=2.0, n=1, stop=[]),
])
def test_valid_edge_cases(body):
    assert isinstance(validate_chat(body), RequestInfo)
    assert outcome(oracle_chat, body) == ("ok",)


def test_body_must_be_a_dict():
    with pytest.raises(TypeError):
        validate_chat([1])  # type: ignore[arg-type]  # read_json answers non-objects before
    assert validate_chat(OrderedDict(chat())).model == "m", "a dict subclass is a dict"


# --------------------------------------------------------------------------------------------
# Differential: generated bodies against the oracle
# --------------------------------------------------------------------------------------------

TEXTS = ["", "x", "hello world", "naïve café 東京 👍🏽", "  \n\t ", "<|endoftext|>", "word " * 130 + "end",
         "多言語テキスト" * 80]
SCALARS = [None, True, False, 0, 1, -1, 2, 3, 10 ** 30, -(10 ** 30), 0.0, 0.5, 1.0, 1.5, 2.0, 2.5, -2.0, -2.5,
           float("nan"), float("inf"), "", "x", "user", "float", "base64", "function"]


def junk(rng: random.Random, depth: int = 0):
    r = rng.random()
    if depth > 1 or r < 0.6:
        return rng.choice(SCALARS + TEXTS)
    if r < 0.8:
        return [junk(rng, depth + 1) for _ in range(rng.randrange(3))]
    return {rng.choice(["a", "type", "text", "include_usage"]): junk(rng, depth + 1) for _ in range(rng.randrange(3))}


def maybe(rng: random.Random, p: float, good, bad=None):
    """``good()`` mostly, else junk (or ``bad``)."""
    if rng.random() < p:
        return good()
    return bad if bad is not None and rng.random() < 0.5 else junk(rng)


def part(rng: random.Random):
    text = rng.choice(TEXTS)
    return rng.choice([
        lambda: text,
        lambda: {"type": "text", "text": text},
        lambda: {"type": "text", "text": None, "refusal": text},
        lambda: {"type": "refusal", "refusal": text},
        lambda: {"type": "text", "text": rng.choice([5, "", False, []]), "refusal": text},
        lambda: {"type": "image_url", "image_url": {"url": _png(rng.randint(1, 3000), rng.randint(1, 3000)),
                                                    "detail": rng.choice(["low", "high", "auto", None])}},
        lambda: {"type": "image_url", "image_url": "https://example.com/a.png"},
        lambda: {"type": "input_image", "detail": "low"},
        lambda: {"type": ["image"], "text": text},
        lambda: junk(rng),
    ])()


def function(rng: random.Random):
    return maybe(rng, 0.8, lambda: {"name": maybe(rng, 0.9, lambda: rng.choice(TEXTS)),
                                    "arguments": maybe(rng, 0.9, lambda: rng.choice(TEXTS))})


def message(rng: random.Random):
    m: dict = {}
    if rng.random() < 0.95:
        m["role"] = maybe(rng, 0.9, lambda: rng.choice(sorted(ROLES)), "wizard")
    r = rng.random()
    if r < 0.45:
        m["content"] = rng.choice(TEXTS)
    elif r < 0.7:
        m["content"] = [part(rng) for _ in range(rng.randrange(4))]
    elif r < 0.85:
        m["content"] = None
    elif r < 0.9:
        m["content"] = junk(rng)
    if rng.random() < 0.2:
        m["name"] = maybe(rng, 0.8, lambda: rng.choice(TEXTS))
    if rng.random() < 0.15:
        m["tool_calls"] = maybe(rng, 0.8, lambda: [
            maybe(rng, 0.9, lambda: {"id": "c", "type": "function", "function": function(rng)})
            for _ in range(rng.randrange(3))])
    if rng.random() < 0.1:
        m["tool_call_id"] = maybe(rng, 0.8, lambda: rng.choice(TEXTS))
    if rng.random() < 0.05:
        m["function_call"] = function(rng)
    if rng.random() < 0.05:
        m[rng.choice(["refusal", "extra", "audio"])] = junk(rng)
    items = list(m.items())
    rng.shuffle(items)  # counting must not depend on key order
    return dict(items)


def tool(rng: random.Random):
    return rng.choice([
        lambda: {"type": "function", "function": {"name": "get_weather", "description": rng.choice(TEXTS),
                                                  "parameters": {"type": "object", "properties": {
                                                      "city": {"type": "string"}, "n": {"type": "integer"}}}}},
        lambda: {"type": "function", "function": {"name": "f"}},
        lambda: {"function": "f"},
        lambda: {"type": ""},
        lambda: {"function": {}},
        lambda: {"function": 0, "type": "function"},
        lambda: {"function": 5},
        lambda: junk(rng),
    ])()


SAMPLING = {
    "stream": lambda rng: rng.random() < 0.5,
    "max_tokens": lambda rng: rng.choice([1, 16, 4096, 10 ** 30]),
    "max_completion_tokens": lambda rng: rng.choice([1, 512]),
    "n": lambda rng: rng.choice([1, 2, 5]),
    "temperature": lambda rng: rng.choice([0, 0.7, 2, 1.99]),
    "top_p": lambda rng: rng.choice([0, 0.9, 1]),
    "presence_penalty": lambda rng: rng.choice([-2, 0.5, 2.0]),
    "frequency_penalty": lambda rng: rng.choice([-1.5, 0, 2]),
    "stop": lambda rng: rng.choice(["\n", ["a", "b"], []]),
    "stream_options": lambda rng: rng.choice([{}, {"include_usage": True}, {"include_usage": 0}]),
}


def body_for(endpoint: str, rng: random.Random) -> dict:
    body: dict = {}
    if rng.random() < 0.95:
        body["model"] = maybe(rng, 0.93, lambda: rng.choice(["gpt-4o-mini", "gpt-4", "claude-x"]), "")
    if endpoint == "chat":
        if rng.random() < 0.97:
            body["messages"] = maybe(rng, 0.95, lambda: [message(rng) for _ in range(rng.randint(1, 5))], [])
        if rng.random() < 0.3:
            body["tools"] = maybe(rng, 0.9, lambda: [tool(rng) for _ in range(rng.randrange(3))])
    elif endpoint == "completions":
        if rng.random() < 0.97:
            body["prompt"] = rng.choice([lambda: rng.choice(TEXTS), lambda: [1, 2, 3], lambda: [True, 1],
                                         lambda: [rng.choice(TEXTS), [1, 2], 5, None, {"a": 1}],
                                         lambda: [], lambda: junk(rng)])()
    else:
        if rng.random() < 0.97:
            body["input"] = rng.choice([
                lambda: rng.choice(TEXTS), lambda: [rng.choice(TEXTS[1:]) for _ in range(rng.randint(1, 3))],
                lambda: [1, 2, 3], lambda: [[1, 2], [True, 3]], lambda: ["a", 5], lambda: [[1], []],
                lambda: ["a"] * rng.choice([2048, 2049]), lambda: [], lambda: junk(rng)])()
        if rng.random() < 0.2:
            body["encoding_format"] = maybe(rng, 0.7, lambda: rng.choice(["float", "base64"]), "hex")
        if rng.random() < 0.2:
            body["dimensions"] = maybe(rng, 0.7, lambda: rng.choice([1, 256]), 0)
    for field, good in SAMPLING.items():
        if rng.random() < 0.25:
            body[field] = maybe(rng, 0.8, lambda: good(rng))
    if endpoint != "chat" and rng.random() < 0.1:
        body["stream"], body["stream_options"] = True, {"include_usage": True}
    return body


def expected_prompt_tokens(endpoint: str, model: str, body: dict) -> tuple[int, bool]:
    if endpoint == "chat":
        enc, exact = tokens._encoding_of(model)
        tools = body.get("tools") if isinstance(body.get("tools"), list) else None
        return oracle_chat_tokens(enc, body["messages"], tools), exact
    return oracle_text_tokens(model, body.get("prompt") if endpoint == "completions" else body.get("input"))


@pytest.mark.parametrize("endpoint", ["chat", "completions", "embeddings"])
def test_differential_against_the_python_rules(endpoint):
    rng = random.Random(20240601 + len(endpoint))
    accepted, errors = 0, set()
    for _ in range(4000):
        body = body_for(endpoint, rng)
        want = outcome(ORACLES[endpoint], body)
        got = outcome(VALIDATORS[endpoint], body)
        assert got == want, body
        if want[0] == "error":
            errors.add(want[2])
            continue
        accepted += 1
        info = VALIDATORS[endpoint](body)
        assert info.body is body and info.model == body["model"]
        streams = bool(body.get("stream")) and endpoint != "embeddings"
        assert info.stream == streams
        assert info.include_usage == (streams and bool((body.get("stream_options") or {}).get("include_usage")))
        if endpoint != "embeddings":
            assert (info.max_tokens, info.max_completion_tokens, info.n) == (
                body.get("max_tokens"), body.get("max_completion_tokens"), body.get("n"))
        model = body["model"]
        count = budgets.prompt_tokens(ENDPOINTS[endpoint], model, body)  # from the dict
        extracted = budgets.prompt_tokens(ENDPOINTS[endpoint], model, body, info)  # from the extraction
        assert (extracted.tokens, extracted.exact) == (count.tokens, count.exact) == expected_prompt_tokens(
            endpoint, model, body), body
    # the generator must reach both sides and most rules, or the comparison proves little
    assert 0.1 < accepted / 4000 < 0.8, accepted
    assert len(errors) >= {"chat": 25, "completions": 14, "embeddings": 10}[endpoint], sorted(errors)


def test_message_counting_of_unvalidated_messages():
    """count_message_tokens (token counter endpoint, Anthropic ingress, partial usage) takes
    messages as they come, garbage included; the extraction must count them as before."""
    rng = random.Random(7)
    enc = tokens.get_encoding("cl100k_base")
    for _ in range(1500):
        messages = [message(rng) if rng.random() < 0.85 else junk(rng) for _ in range(rng.randrange(6))]
        tools = [tool(rng) for _ in range(rng.randrange(3))] if rng.random() < 0.2 else None
        assert tokens.count_message_tokens("gpt-4", messages, tools).tokens == oracle_chat_tokens(enc, messages, tools)
    assert tokens.count_message_tokens("gpt-4", iter([{"role": "user", "content": "hi"}])).tokens == 3 + 3 + 1 + 1


# --------------------------------------------------------------------------------------------
# The handoff to admission
# --------------------------------------------------------------------------------------------

def test_admission_counts_the_extraction_only_for_its_own_body():
    body = chat(messages=[{"role": "user", "content": "one two three"}])
    info = validate_chat(body)
    before = budgets.prompt_tokens("chat.completions", "gpt-4o", body)
    body["messages"] = [{"role": "user", "content": "one two three four five six seven"}]  # now differs
    assert budgets.prompt_tokens("chat.completions", "gpt-4o", body, info) == before, "the extraction was used"
    other = dict(body)
    assert budgets.prompt_tokens("chat.completions", "gpt-4o", other, info).tokens > before.tokens, \
        "another body is counted from its dict"
    assert budgets.prompt_tokens("chat.completions", "gpt-4o", body).tokens > before.tokens
