"""Type stubs for the compiled BPE tokenizer (fastgw/_core/tokenizer.pyx)."""

from typing import Iterable, TypedDict

ENCODING_NAMES: tuple[str, ...]

class EncodingSpec(TypedDict):
    pattern: str
    special_tokens: dict[str, int]

class Encoding:
    """A loaded encoding; immutable, safe to share between threads."""

    @property
    def name(self) -> str: ...
    @property
    def n_vocab(self) -> int: ...
    @property
    def special_tokens(self) -> dict[str, int]: ...
    def __init__(self, name: str, ranks: bytes, special_tokens: dict[str, int], o200k: bool) -> None:
        """``ranks``: uncompressed ``.tiktoken`` file; ``o200k`` picks the split pattern."""
    def encode(self, text: str, allow_special: bool = False) -> list[int]:
        """Like tiktoken's ``encode_ordinary``; with ``allow_special`` special-token text maps
        to the special ids (``allowed_special="all"``). Lone surrogates become U+FFFD."""
    def count(self, text: str, allow_special: bool = False) -> int:
        """``len(encode(text, allow_special))`` without building the list."""
    def decode(self, tokens: Iterable[int]) -> bytes: ...
    def split(self, text: str) -> list[str]:
        """The pre-tokeniser's pieces (special tokens not recognised)."""

def load_encoding(name: str) -> Encoding:
    """Load a shipped encoding ("o200k_base" or "cl100k_base"); raises ValueError otherwise."""

def encoding_spec(name: str) -> EncodingSpec: ...
def data_path(name: str) -> str: ...
