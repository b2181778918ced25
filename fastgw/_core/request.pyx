# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# distutils: extra_compile_args = -O3
"""The request fast path: validate an OpenAI request body and extract, in the same pass,
what routing and accounting need.

The body is the dict ``orjson.loads`` made of the request (``fastgw.validation.read_json``).
Each validator checks the fields in a fixed order and raises the first failure as the
400 ``GatewayError`` clients see; its message, ``param`` and ``code`` are API surface
(clients and tests match on them), so they must not drift. On success it returns a
``RequestInfo``: the routing fields and a ``Prompt``, the strings the token counter counts,
so admission (budget reservation, tpm) does not walk the messages a second time.

Type checks are the C-level ``Py*_Check`` macros; values keep their Python objects (no
copies), and big integers are compared as Python ints, so nothing overflows.
"""

from fastgw.errors import bad_request

ROLES = frozenset(("system", "developer", "user", "assistant", "tool", "function"))
cdef str _ROLE_LIST = ", ".join(sorted(ROLES))
cdef frozenset _ROLES = ROLES


cdef class Prompt:
    """What the token counter needs of a prompt, without the messages around it.

    ``texts`` are counted one by one (a BPE count of their concatenation would differ);
    ``images`` are chat image parts, costed by the tile formula in ``fastgw.tokens``;
    ``messages`` and ``names`` carry the per-message and per-name overheads of chat
    prompts; ``token_ids`` counts prompts sent as arrays of token ids.
    """

    cdef readonly list texts
    cdef readonly list images
    cdef readonly Py_ssize_t messages
    cdef readonly Py_ssize_t names
    cdef readonly Py_ssize_t token_ids
    cdef readonly bint chat

    def __cinit__(self):
        self.texts = []
        self.images = []

    def __repr__(self):
        return (f"Prompt(chat={self.chat}, messages={self.messages}, names={self.names}, "
                f"texts={len(self.texts)}, images={len(self.images)}, token_ids={self.token_ids})")


cdef class RequestInfo:
    """A validated request: its fields as routing and accounting read them.

    ``body`` is the dict it was extracted from, so a consumer can tell whether the info
    describes the body it holds (the body may be rebuilt later, e.g. for another format).
    """

    cdef readonly object body
    cdef readonly object model
    cdef readonly bint stream
    cdef readonly bint include_usage
    cdef readonly object max_tokens
    cdef readonly object max_completion_tokens
    cdef readonly object n
    cdef readonly object tools
    cdef readonly Prompt prompt

    def __repr__(self):
        return (f"RequestInfo(model={self.model!r}, stream={self.stream}, include_usage={self.include_usage}, "
                f"max_tokens={self.max_tokens}, max_completion_tokens={self.max_completion_tokens}, n={self.n}, "
                f"{self.prompt!r})")


# --------------------------------------------------------------------------------------------
# Prompt extraction: the strings fastgw.tokens counts (every string field of a message,
# text parts, tool calls' names and arguments), images apart.
# --------------------------------------------------------------------------------------------

cdef int _add_function(Prompt prompt, object function) except -1:
    if isinstance(function, dict):
        name = (<dict>function).get("name")
        if isinstance(name, str):
            prompt.texts.append(name)
        arguments = (<dict>function).get("arguments")
        if isinstance(arguments, str):
            prompt.texts.append(arguments)
    return 0


cdef int _add_content(Prompt prompt, object content) except -1:
    if isinstance(content, str):
        prompt.texts.append(content)
        return 0
    if not isinstance(content, list):
        return 0
    for part in <list>content:
        if isinstance(part, str):
            prompt.texts.append(part)
        elif isinstance(part, dict):
            kind = (<dict>part).get("type")
            if isinstance(kind, str) and (kind == "image_url" or kind == "input_image" or kind == "image"):
                prompt.images.append(part)
                continue
            text = (<dict>part).get("text")
            if text is None:
                text = (<dict>part).get("refusal")
            if isinstance(text, str):
                prompt.texts.append(text)
    return 0


cdef int _add_message(Prompt prompt, dict message) except -1:
    for key, value in message.items():
        if value is None:
            continue
        if key == "content":
            _add_content(prompt, value)
        elif isinstance(value, str):
            prompt.texts.append(value)
            if key == "name":
                prompt.names += 1
        elif key == "tool_calls" and isinstance(value, list):
            for call in <list>value:
                if isinstance(call, dict):
                    _add_function(prompt, (<dict>call).get("function"))
        elif key == "function_call":
            _add_function(prompt, value)
    return 0


cdef Prompt _text_prompt(object value):
    cdef Prompt prompt = Prompt.__new__(Prompt)
    cdef bint all_ids
    if isinstance(value, str):
        prompt.texts.append(value)
    elif isinstance(value, list) and len(<list>value):
        all_ids = True
        for item in <list>value:
            if not isinstance(item, int):
                all_ids = False
                break
        if all_ids:
            prompt.token_ids = len(<list>value)
        else:
            for item in <list>value:
                if isinstance(item, str):
                    prompt.texts.append(item)
                elif isinstance(item, list):
                    prompt.token_ids += len(<list>item)
    return prompt


def message_prompt(list messages not None):
    """The prompt of chat messages as they are, unvalidated (a non-object message still
    costs the per-message overhead)."""
    cdef Prompt prompt = Prompt.__new__(Prompt)
    prompt.chat = True
    prompt.messages = len(messages)
    for message in messages:
        if isinstance(message, dict):
            _add_message(prompt, <dict>message)
    return prompt


def text_prompt(value):
    """The prompt of a completion ``prompt`` or an embedding ``input``: strings to count,
    arrays of token ids counted by length; anything else counts nothing."""
    return _text_prompt(value)


# --------------------------------------------------------------------------------------------
# Field rules shared by the endpoints
# --------------------------------------------------------------------------------------------

cdef object _required_str(dict body, str field):
    value = body.get(field)
    if value is None:
        raise bad_request(f"'{field}' is a required property", field, "missing_required_parameter")
    if not isinstance(value, str) or not len(<str>value):
        raise bad_request(f"'{field}' must be a non-empty string", field)
    return value


cdef inline bint _is_int(object value):
    return isinstance(value, int) and not isinstance(value, bool)


cdef object _positive_int(dict body, str field):
    value = body.get(field)
    if value is None:
        return None
    if not _is_int(value):
        raise bad_request(f"'{field}' must be an integer", field)
    if value < 1:
        raise bad_request(f"'{field}' must be at least 1", field)
    return value


cdef int _number_between(dict body, str field, int low, int high) except -1:
    cdef double x
    value = body.get(field)
    if value is None:
        return 0
    if isinstance(value, float):
        x = <double>value
        if low <= x <= high:  # NaN fails, as in Python
            return 0
    elif _is_int(value):
        if low <= value <= high:  # as Python ints: no overflow
            return 0
    else:
        raise bad_request(f"'{field}' must be a number", field)
    raise bad_request(f"'{field}' must be between {low} and {high}", field)


cdef int _sampling(RequestInfo info, dict body) except -1:
    """Rules common to chat and completions, in the order their errors are reported."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise bad_request("'stream' must be a boolean", "stream")
    info.stream = stream is True
    info.max_tokens = _positive_int(body, "max_tokens")
    info.max_completion_tokens = _positive_int(body, "max_completion_tokens")
    info.n = _positive_int(body, "n")
    _number_between(body, "temperature", 0, 2)
    _number_between(body, "top_p", 0, 1)
    _number_between(body, "presence_penalty", -2, 2)
    _number_between(body, "frequency_penalty", -2, 2)
    stop = body.get("stop")
    if stop is not None and not isinstance(stop, str):
        if not isinstance(stop, list) or not _all_str(<list>stop):
            raise bad_request("'stop' must be a string or an array of strings", "stop")
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise bad_request("'stream_options' must be an object", "stream_options")
        if not info.stream:
            raise bad_request("'stream_options' is only allowed when 'stream' is true", "stream_options")
        info.include_usage = bool((<dict>options).get("include_usage"))
    return 0


cdef bint _all_str(list items):
    for item in items:
        if not isinstance(item, str):
            return False
    return True


cdef bint _token_ids(object item):
    """A non-empty array of integers (bools pass, as ``isinstance(True, int)`` does)."""
    if not isinstance(item, list) or not len(<list>item):
        return False
    for token in <list>item:
        if not isinstance(token, int):
            return False
    return True


cdef dict _as_dict(object body):
    if not isinstance(body, dict):  # read_json answers non-objects; dict subclasses are fine
        raise TypeError(f"a request body must be a dict, not {type(body).__name__}")
    return <dict>body


cdef RequestInfo _new_info(dict body):
    cdef RequestInfo info = RequestInfo.__new__(RequestInfo)
    info.body = body
    info.model = _required_str(body, "model")
    return info


# --------------------------------------------------------------------------------------------
# Endpoints
# --------------------------------------------------------------------------------------------

def validate_chat(body):
    """``POST /v1/chat/completions``: model, messages, tools, then the sampling fields."""
    return _chat(_as_dict(body))


cdef RequestInfo _chat(dict body):
    cdef RequestInfo info = _new_info(body)
    cdef Prompt prompt = Prompt.__new__(Prompt)
    cdef Py_ssize_t index, count
    messages = body.get("messages")
    if messages is None:
        raise bad_request("'messages' is a required property", "messages", "missing_required_parameter")
    if not isinstance(messages, list) or not len(<list>messages):
        raise bad_request("'messages' must be a non-empty array", "messages")
    count = len(<list>messages)
    for index in range(count):
        message = (<list>messages)[index]
        if not isinstance(message, dict):
            raise bad_request(f"'messages[{index}]' must be an object", f"messages[{index}]")
        role = (<dict>message).get("role")
        if not isinstance(role, str) or role not in _ROLES:
            raise bad_request(f"'messages[{index}].role' must be one of {_ROLE_LIST}", f"messages[{index}].role")
        content = (<dict>message).get("content")
        if content is None:
            if role == "user" or role == "system" or role == "developer":
                raise bad_request(f"'messages[{index}].content' is required for role '{role}'",
                                  f"messages[{index}].content")
        elif not isinstance(content, (str, list)):
            raise bad_request(f"'messages[{index}].content' must be a string or an array of content parts",
                              f"messages[{index}].content")
        _add_message(prompt, <dict>message)
    prompt.chat = True
    prompt.messages = count
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise bad_request("'tools' must be an array", "tools")
        for index in range(len(<list>tools)):
            tool = (<list>tools)[index]
            if not isinstance(tool, dict) or not _tool_kind(<dict>tool):
                raise bad_request(f"'tools[{index}]' must be a tool object", f"tools[{index}]")
        info.tools = tools
    _sampling(info, body)
    info.prompt = prompt
    return info


cdef bint _tool_kind(dict tool):
    """A tool names its ``function`` (object or string) or, failing that, its ``type``."""
    kind = tool.get("function")
    if not kind:
        kind = tool.get("type")
    return isinstance(kind, (dict, str))


def validate_completions(body):
    """``POST /v1/completions``: model, prompt (a string or any array), then the sampling fields."""
    return _completions(_as_dict(body))


cdef RequestInfo _completions(dict body):
    cdef RequestInfo info = _new_info(body)
    prompt = body.get("prompt")
    if prompt is None:
        raise bad_request("'prompt' is a required property", "prompt", "missing_required_parameter")
    if not isinstance(prompt, (str, list)):
        raise bad_request("'prompt' must be a string or an array", "prompt")
    _sampling(info, body)
    info.prompt = _text_prompt(prompt)
    return info


def validate_embeddings(body):
    """``POST /v1/embeddings``: model, input, encoding_format, dimensions. Never a stream."""
    return _embeddings(_as_dict(body))


cdef RequestInfo _embeddings(dict body):
    cdef RequestInfo info = _new_info(body)
    cdef Py_ssize_t index
    inputs = body.get("input")
    if inputs is None:
        raise bad_request("'input' is a required property", "input", "missing_required_parameter")
    if isinstance(inputs, str):
        if not len(<str>inputs):
            raise bad_request("'input' must not be an empty string", "input")
    elif isinstance(inputs, list):
        if not len(<list>inputs):
            raise bad_request("'input' must not be an empty array", "input")
        if len(<list>inputs) > 2048:
            raise bad_request("'input' may hold at most 2048 items", "input")
        for index in range(len(<list>inputs)):
            item = (<list>inputs)[index]
            if isinstance(item, str):
                if len(<str>item):
                    continue
            elif _is_int(item) or _token_ids(item):
                continue
            raise bad_request(f"'input[{index}]' must be a non-empty string or an array of token ids",
                              f"input[{index}]")
    else:
        raise bad_request("'input' must be a string or an array", "input")
    fmt = body.get("encoding_format")
    if fmt is not None and not (isinstance(fmt, str) and (fmt == "float" or fmt == "base64")):
        raise bad_request("'encoding_format' must be 'float' or 'base64'", "encoding_format")
    _positive_int(body, "dimensions")
    info.prompt = _text_prompt(inputs)
    return info


def header_value(list raw not None, str name not None):
    """The first value of header ``name`` in ASGI ``raw`` headers (lower-case byte names), decoded
    as latin-1, or None. Starlette's ``Headers`` does this in a Python loop per lookup, and
    raises and catches ``KeyError`` for an absent header; a request looks up five or so."""
    cdef bytes key = name.lower().encode("latin-1")
    for item_name, item_value in raw:
        if item_name == key:
            return (<bytes>item_value).decode("latin-1") if type(item_value) is bytes \
                else bytes(item_value).decode("latin-1")
    return None
