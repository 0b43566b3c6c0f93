"""Calibration hits the target ε within tolerance and never above; δ must be below 1/N."""

from __future__ import annotations

import pytest

from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import PrivacyConfig
from sealroom.privacy.calibrate import (
    EPSILON_TOLERANCE,
    calibrate_noise,
    epsilon_after,
    plan_privacy,
)


@pytest.mark.parametrize(
    ("target", "sample_rate", "steps", "accountant"),
    [
        (1.0, 0.01, 500, "rdp"),
        (3.0, 0.004, 2000, "rdp"),
        (8.0, 0.05, 200, "rdp"),
        (3.0, 0.02, 300, "prv"),
        (0.5, 0.1, 50, "prv"),
    ],
)
def test_calibration_lands_within_tolerance_below_target(
    target: float, sample_rate: float, steps: int, accountant: str
) -> None:
    sigma, eps = calibrate_noise(target, 1e-5, sample_rate, steps, accountant)
    assert eps <= target
    assert target - eps <= EPSILON_TOLERANCE
    # the reported ε is what the accountant says for that noise, independently recomputed
    assert epsilon_after(sigma, sample_rate, steps, 1e-5, accountant) == pytest.approx(eps)


def test_plan_uses_poisson_rate_and_steps_per_epoch() -> None:
    plan = plan_privacy(PrivacyConfig(epsilon=3, delta=1e-5, accountant="rdp"), 60_000, 256, 2)
    assert plan.sample_rate == pytest.approx(1 / 235)
    assert plan.steps == 470 and plan.max_steps == 470
    assert plan.calibrated and plan.epsilon <= 3.0


def test_delta_at_or_above_one_over_n_is_refused() -> None:
    with pytest.raises(PrivacyError, match=r"δ 0.01 is not below 1/N"):
        plan_privacy(PrivacyConfig(epsilon=3, delta=1e-2), 100, 10, 1)
    plan_privacy(PrivacyConfig(epsilon=3, delta=9e-3, accountant="rdp"), 100, 10, 1)


def test_given_noise_multiplier_stops_where_the_target_is_reached() -> None:
    cfg = PrivacyConfig(epsilon=2.0, delta=1e-5, noise_multiplier=1.5, accountant="rdp")
    plan = plan_privacy(cfg, 1000, 100, 20)
    assert not plan.calibrated
    assert 0 < plan.max_steps < plan.steps
    assert plan.epsilon <= 2.0
    evaluation = plan.evaluation_history(plan.eval_releases)
    over = epsilon_after(1.5, plan.sample_rate, plan.max_steps + 1, 1e-5, "rdp", evaluation)
    assert over > 2.0


def test_noise_too_small_for_even_one_step_is_refused() -> None:
    cfg = PrivacyConfig(epsilon=0.01, delta=1e-5, noise_multiplier=0.3, accountant="rdp")
    with pytest.raises(PrivacyError, match="single step"):
        plan_privacy(cfg, 1000, 500, 1)
