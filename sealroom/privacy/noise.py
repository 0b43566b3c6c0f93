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
_LOW_53_BITS = (1 << 53) - 1


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

    def _bits53(self, count: int) -> Tensor:
        """``count`` random 53-bit integers (int64) from the keystream."""
        words = np.frombuffer(self._stream.update(bytes(8 * count)), dtype=np.int64).copy()
        return torch.from_numpy(words).bitwise_right_shift_(11).bitwise_and_(_LOW_53_BITS)

    def uniform(self, count: int) -> Tensor:
        """Uniform float64 in (0, 1]: 53 random bits each (never 0, so its log is finite)."""
        return self._bits53(count).to(torch.float64).add_(1.0).mul_(2.0**-53)

    def standard_normal(self, count: int) -> Tensor:
        """Box–Muller in float64: two uniforms give two independent standard normals."""
        half = (count + 1) // 2
        u = self.uniform(2 * half)
        radius = u[:half].log_().mul_(-2.0).sqrt_()
        angle = u[half:].mul_(_TWO_PI)
        return torch.cat([radius * angle.cos(), radius * angle.sin()])[:count]

    def normal(self, count: int, std: float) -> Tensor:
        draws = self.standard_normal(4 * count).view(4, count)
        return draws.sum(0).mul_(0.5 * std).to(torch.float32)

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
