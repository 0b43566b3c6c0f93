"""The secure noise source: right distribution, fresh key each time."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kstest

from sealroom.privacy.noise import SecureRandom, SeededRandom


def test_secure_normal_has_the_requested_spread() -> None:
    values = SecureRandom().normal(200_000, 2.5).numpy().astype(np.float64)
    assert abs(values.mean()) < 0.03
    assert abs(values.std() - 2.5) < 0.03
    # tails like a Gaussian: about 4.55% beyond two standard deviations
    assert abs((np.abs(values) > 5.0).mean() - 0.0455) < 0.003
    # and Gaussian as a whole (a wrong bit mask or angle shows up here long before the tails)
    assert kstest(values / 2.5, "norm").pvalue > 1e-6


def test_secure_uniform_is_in_the_half_open_unit_interval() -> None:
    values = SecureRandom().uniform(100_000).numpy()
    assert values.min() > 0.0 and values.max() <= 1.0
    assert kstest(values, "uniform").pvalue > 1e-6


def test_two_secure_sources_differ_and_seeded_ones_repeat() -> None:
    assert not np.array_equal(SecureRandom().normal(8, 1.0), SecureRandom().normal(8, 1.0))
    assert np.array_equal(SeededRandom(3).normal(8, 1.0), SeededRandom(3).normal(8, 1.0))


@settings(max_examples=20, deadline=None)
@given(st.floats(min_value=0.001, max_value=0.5))
def test_poisson_mask_rate(p: float) -> None:
    mask = SecureRandom().bernoulli_mask(100_000, p).numpy()
    sd = np.sqrt(p * (1 - p) / 100_000)
    assert abs(mask.mean() - p) < 6 * sd
