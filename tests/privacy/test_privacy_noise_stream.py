"""The ChaCha20 noise stream: block counter 0, re-keyed before the 32-bit counter overflows.

The audit's finding: ``os.urandom(16)`` as cryptography's ChaCha20 nonce also set the
32-bit block counter (its first 4 bytes, little-endian) at random, and the stream raised
mid-training when that counter would overflow.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from scipy.stats import kstest

from sealroom.privacy import noise
from sealroom.privacy.noise import CHACHA20_STREAM_BYTES, KeyStream, SecureRandom


def test_every_stream_starts_at_block_counter_zero() -> None:
    for _ in range(50):
        stream = KeyStream()
        assert stream.nonce[:4] == bytes(4)  # the counter bytes
        assert len(set(stream.nonce[4:])) > 1  # the 12 nonce bytes are random
    assert SecureRandom()._stream.limit == CHACHA20_STREAM_BYTES == 64 * 2**32


def _chacha(key: bytes, nonce: bytes, count: int) -> bytes:
    return Cipher(algorithms.ChaCha20(key, nonce), mode=None).encryptor().update(bytes(count))


def test_a_stream_at_its_limit_re_keys_and_keeps_producing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Known os.urandom output: the bytes are key 1's stream up to the limit, then key 2's."""
    counter = itertools.count(1)
    monkeypatch.setattr(noise.os, "urandom", lambda n: bytes([next(counter) % 256]) * n)
    limit = 64 * 3 + 8  # a limit inside a block, and reads that straddle it
    stream = KeyStream(limit)
    first_nonce = stream.nonce
    got = b"".join(stream.read(n) for n in (100, 100, 100, 50))
    assert stream.keys == 2
    # key 1 = urandom call 2 (the nonce is call 1); key 2 = call 4 (its nonce is call 3)
    expected = _chacha(bytes([2]) * 32, first_nonce, limit)
    expected += _chacha(bytes([4]) * 32, bytes(4) + bytes([3]) * 12, 350 - limit)
    assert got == expected
    assert stream.used == 350 - limit


def test_the_full_size_limit_is_what_cryptography_allows() -> None:
    """One block short of 2³² from counter 0 works; the stream never asks for more."""
    key, nonce = bytes(32), bytes(16)
    last = (2**32 - 1).to_bytes(4, "little") + nonce[4:]
    encryptor = Cipher(algorithms.ChaCha20(key, last), mode=None).encryptor()
    encryptor.update(bytes(64))  # the last block counter 0 + 2³² - 1 can give
    with pytest.raises(ValueError, match="overflow"):
        encryptor.update(bytes(1))
    assert CHACHA20_STREAM_BYTES == 64 * 2**32  # = (2³² - 1 - 0 + 1) blocks of 64 bytes


def test_normals_across_many_re_keys_are_still_gaussian() -> None:
    source = SecureRandom(limit_bytes=4096 + 24)  # re-keys every ~ 128 normals
    values = source.normal(50_000, 1.5).numpy().astype(np.float64)
    assert source._stream.keys > 100
    assert abs(values.mean()) < 0.03
    assert abs(values.std() - 1.5) < 0.03
    assert kstest(values / 1.5, "norm").pvalue > 1e-6
    mask = source.bernoulli_mask(100_000, 0.01).numpy()
    assert abs(mask.mean() - 0.01) < 6 * np.sqrt(0.01 * 0.99 / 100_000)
