"""Adversarial chunking for stream tests: the same bytes as one read, one byte per read,
or seeded random read sizes (how a socket may hand them over)."""
from __future__ import annotations

import random


def pieces(data: bytes, mode: str) -> list[bytes]:
    """``mode``: "whole", "bytes", or any other string as the seed of random sizes 1..23."""
    if mode == "whole":
        return [data]
    if mode == "bytes":
        return [data[i:i + 1] for i in range(len(data))]
    rng = random.Random(mode)
    out, i = [], 0
    while i < len(data):
        n = rng.randint(1, 23)
        out.append(data[i:i + n])
        i += n
    return out
