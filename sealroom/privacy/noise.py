"""Randomness for DP-SGD: the Gaussian noise and the Poisson sampling of each step.

``SecureRandom`` draws from a ChaCha20 keystream (the ``cryptography`` package, i.e.
OpenSSL) keyed with 32 bytes from ``os.urandom``: a CSPRNG, unlike PyTorch's Mersenne
Twister. Opacus' own secure mode needs ``torchcsprng``, which is archived, so it is not
used. Normals come from Box–Muller in float64, and each noise value is the sum of four
draws halved (same distribution) — the defence against floating-point attacks on the
Gaussian mechanism that Opacus' secure mode uses (Holohan & Braghin 2021, §5.1, n = 2).

The keystream starts at block counter 0: ``cryptography``'s ChaCha20 takes a 16-byte
nonce whose first 4 bytes are the little-endian 32-bit block counter and whose last 12
are the RFC 8439 nonce, so the nonce is 4 zero bytes + 12 random ones (16 random bytes
started the counter anywhere, and the stream raised mid-training when it overflowed).
Before the 2³² blocks one (key, nonce) may give, the stream re-keys with a fresh key.

``SeededRandom`` uses a seeded ``torch.Generator``: reproducible, for tests and
benchmarks only, and reported as such in the privacy report.
"""

from __future__ import annotations

import math
import os
from typing import Protocol

import numpy as np
import torch
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from torch import Tensor

_TWO_PI = 2.0 * math.pi
# RFC 8439: a 32-bit block counter of 64-byte blocks per (key, nonce).
CHACHA20_BLOCK_BYTES = 64
CHACHA20_STREAM_BYTES = CHACHA20_BLOCK_BYTES * 2**32


class NoiseSource(Protocol):
    """Where a DP run's randomness comes from; ``description`` goes into the privacy report."""

    description: str

    def normal(self, count: int, std: float) -> Tensor:
        """``count`` float32 samples of N(0, std²) on the CPU."""
        ...

    def bernoulli_mask(self, count: int, p: float) -> Tensor:
        """``count`` independent booleans, each True with probability ``p``."""
        ...


class KeyStream:
    """ChaCha20 keystream from block counter 0, re-keyed before the counter would overflow.

    ``limit_bytes`` is how much one (key, nonce) gives before a fresh key is drawn (the
    RFC 8439 limit; tests pass a small one).
    """

    def __init__(self, limit_bytes: int = CHACHA20_STREAM_BYTES) -> None:
        if not 0 < limit_bytes <= CHACHA20_STREAM_BYTES:
            raise ValueError(f"limit_bytes must be in (0, {CHACHA20_STREAM_BYTES}]")
        self.limit = limit_bytes
        self.keys = 0  # keys drawn so far
        self._rekey()

    def _rekey(self) -> None:
        self.nonce = bytes(4) + os.urandom(12)  # block counter 0, random 96-bit nonce
        cipher = Cipher(algorithms.ChaCha20(os.urandom(32), self.nonce), mode=None)
        self._encryptor = cipher.encryptor()
        self.used = 0  # bytes drawn under this key
        self.keys += 1

    def read(self, count: int) -> bytes:
        """The next ``count`` keystream bytes."""
        parts = []
        while count > 0:
            if self.used >= self.limit:
                self._rekey()
            take = min(count, self.limit - self.used)
            parts.append(self._encryptor.update(bytes(take)))
            self.used += take
            count -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)


class SecureRandom:
    """ChaCha20 keystream keyed from ``os.urandom``; see the module docstring."""

    description = (
        "ChaCha20 keystream (cryptography/OpenSSL) keyed with 32 bytes from os.urandom; "
        "Gaussian noise by Box-Muller in float64, each value the halved sum of four draws "
        "(floating-point attack defence); Poisson sampling from the same stream"
    )

    def __init__(self, limit_bytes: int = CHACHA20_STREAM_BYTES) -> None:
        self._stream = KeyStream(limit_bytes)

    def uniform(self, count: int) -> Tensor:
        """Uniform float64 in (0, 1]: 53 random bits each (never 0, so its log is finite)."""
        words = np.frombuffer(self._stream.read(8 * count), dtype=np.uint64)
        top53 = (words >> np.uint64(11)).astype(np.float64)  # exact: < 2⁵³
        return torch.from_numpy(top53).add_(1.0).mul_(2.0**-53)

    def standard_normal(self, count: int) -> Tensor:
        """Box–Muller in float64: two uniforms give two independent standard normals."""
        half = (count + 1) // 2
        u = self.uniform(2 * half)
        radius = u[:half].log_().mul_(-2.0).sqrt_()
        angle = u[half:].mul_(_TWO_PI)
        return torch.cat([radius * angle.cos(), radius * angle.sin()])[:count]

    def normal(self, count: int, std: float) -> Tensor:
        """Each value: four standard normals (two Box–Muller pairs) summed, times std / 2.

        A pair's r·cosθ and r·sinθ are independent N(0, 1), so r·(cosθ + sinθ) is the sum
        of two; the same arithmetic as summing ``standard_normal(4 * count)`` in fours,
        without the concatenation and copies (the noise draw was ~4 % of a step).
        """
        pairs = 2 * count
        u = self.uniform(2 * pairs)
        radius = u[:pairs].log_().mul_(-2.0).sqrt_()
        angle = u[pairs:].mul_(_TWO_PI)
        both = angle.cos().add_(angle.sin_()).mul_(radius)
        return both.view(2, count).sum(0).mul_(0.5 * std).to(torch.float32)

    def bernoulli_mask(self, count: int, p: float) -> Tensor:
        words = np.frombuffer(self._stream.read(4 * count), dtype=np.uint32)
        threshold = np.uint32(min(int(p * 2.0**32), 2**32 - 1))
        return torch.from_numpy(words < threshold)


class SeededRandom:
    """A seeded ``torch.Generator``: reproducible runs for tests and benchmarks, not secure."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.description = f"torch.Generator (Mersenne Twister) seeded with {seed}: NOT secure"
        self._generator = torch.Generator().manual_seed(seed)

    def normal(self, count: int, std: float) -> Tensor:
        return torch.normal(0.0, std, (count,), generator=self._generator)

    def bernoulli_mask(self, count: int, p: float) -> Tensor:
        return torch.rand(count, generator=self._generator) < p
