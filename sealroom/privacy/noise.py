"""Randomness for DP-SGD: the Gaussian noise and the Poisson sampling of each step.

``SecureRandom`` draws from a ChaCha20 keystream (the ``cryptography`` package, i.e.
OpenSSL) keyed with 32 bytes from ``os.urandom``: a CSPRNG, unlike PyTorch's Mersenne
Twister. Opacus' own secure mode needs ``torchcsprng``, which is archived, so it is not
used. Normals come from Box–Muller in float64, and each noise value is the sum of four
draws halved (same distribution) — the defence against floating-point attacks on the
Gaussian mechanism that Opacus' secure mode uses (Holohan & Braghin 2021, §5.1, n = 2).

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


class NoiseSource(Protocol):
    """Where a DP run's randomness comes from; ``description`` goes into the privacy report."""

    description: str

    def normal(self, count: int, std: float) -> Tensor:
        """``count`` float32 samples of N(0, std²) on the CPU."""
        ...

    def bernoulli_mask(self, count: int, p: float) -> Tensor:
        """``count`` independent booleans, each True with probability ``p``."""
        ...


class SecureRandom:
    """ChaCha20 keystream keyed from ``os.urandom``; see the module docstring."""

    description = (
        "ChaCha20 keystream (cryptography/OpenSSL) keyed with 32 bytes from os.urandom; "
        "Gaussian noise by Box-Muller in float64, each value the halved sum of four draws "
        "(floating-point attack defence); Poisson sampling from the same stream"
    )

    def __init__(self) -> None:
        cipher = Cipher(algorithms.ChaCha20(os.urandom(32), os.urandom(16)), mode=None)
        self._stream = cipher.encryptor()

    def _uint64(self, count: int) -> np.ndarray:
        return np.frombuffer(self._stream.update(bytes(8 * count)), dtype=np.uint64)

    def uniform(self, count: int) -> np.ndarray:
        """Uniform float64 in (0, 1]: 53 random bits each."""
        return ((self._uint64(count) >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53

    def standard_normal(self, count: int) -> np.ndarray:
        """Box–Muller: two uniforms give two independent standard normals."""
        half = (count + 1) // 2
        u = self.uniform(2 * half)
        radius = np.sqrt(-2.0 * np.log(u[:half]))
        angle = _TWO_PI * u[half:]
        return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)])[:count]

    def normal(self, count: int, std: float) -> Tensor:
        draws = self.standard_normal(4 * count).reshape(4, count)
        values = draws.sum(axis=0) * (0.5 * std)
        return torch.from_numpy(values.astype(np.float32))

    def bernoulli_mask(self, count: int, p: float) -> Tensor:
        words = np.frombuffer(self._stream.update(bytes(4 * count)), dtype=np.uint32)
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
