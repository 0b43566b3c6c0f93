"""Another spelling of the same bytes in base64: what canonical decoding must refuse."""

from __future__ import annotations

import base64

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def respelled(encoded: str) -> str:
    """``encoded`` with an unused low bit of its last character set: same bytes decoded."""
    data = encoded.rstrip("=")
    padding = encoded[len(data) :]
    last = ALPHABET[ALPHABET.index(data[-1]) | 1]
    other = data[:-1] + last + padding
    assert padding and other != encoded  # only padded encodings have unused bits
    assert base64.b64decode(other) == base64.b64decode(encoded)
    return other
