"""Type stubs for the compiled request fast path (fastgw/_core/request.pyx)."""

ROLES: frozenset[str]

class Prompt:
    """What the token counter needs of a prompt (see ``fastgw.tokens.count_prompt``)."""

    @property
    def texts(self) -> list[str]:
        """Strings counted one by one: message fields, text parts, tool calls, prompt/input."""
    @property
    def images(self) -> list[dict]:
        """Chat image parts, costed by the tile formula."""
    @property
    def messages(self) -> int:
        """Chat messages (each costs the per-message overhead); 0 for text prompts."""
    @property
    def names(self) -> int:
        """String ``name`` fields of chat messages (each costs one more token)."""
    @property
    def token_ids(self) -> int:
        """Tokens sent as arrays of token ids (completions and embeddings)."""
    @property
    def chat(self) -> bool:
        """True for chat messages: the reply priming is added."""

class RequestInfo:
    """A validated request's fields as routing and accounting read them."""

    @property
    def body(self) -> dict:
        """The body it was extracted from (consumers check identity before trusting it)."""
    @property
    def model(self) -> str: ...
    @property
    def stream(self) -> bool:
        """Always False for embeddings."""
    @property
    def include_usage(self) -> bool:
        """``stream_options.include_usage`` is truthy (only possible when streaming)."""
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def max_completion_tokens(self) -> int | None: ...
    @property
    def n(self) -> int | None: ...
    @property
    def tools(self) -> list | None:
        """Chat tool definitions, for the token counter's rendering."""
    @property
    def prompt(self) -> Prompt: ...

def validate_chat(body: dict) -> RequestInfo:
    """Raises the first rule a chat completions body breaks as a 400 ``GatewayError``."""

def validate_completions(body: dict) -> RequestInfo:
    """Raises the first rule a completions body breaks as a 400 ``GatewayError``."""

def validate_embeddings(body: dict) -> RequestInfo:
    """Raises the first rule an embeddings body breaks as a 400 ``GatewayError``."""

def message_prompt(messages: list) -> Prompt:
    """The prompt of chat messages as they are, unvalidated."""

def text_prompt(value: object) -> Prompt:
    """The prompt of a completion ``prompt`` or an embedding ``input``."""

def header_value(raw: list[tuple[bytes, bytes]], name: str) -> str | None:
    """The first value of header ``name`` in ASGI raw headers (latin-1), or None."""
