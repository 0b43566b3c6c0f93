"""Plan a DP-SGD run before it starts: noise multiplier, sampling rate, steps and projected ε.

The plan is what the budget reserves and what the trainer enforces. Calibration searches
the noise multiplier with the chosen accountant so that the projected ε is at most the
target (never above) and within ``EPSILON_TOLERANCE`` of it. The sampling rate follows
Opacus' convention for Poisson sampling: one expected batch per ``ceil(N / batch_size)``.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass
from typing import Any

from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import PrivacyConfig

EPSILON_TOLERANCE = 0.01  # calibrated ε lies in [target - tolerance, target]
MAX_SIGMA = 1e4


@dataclass(frozen=True)
class PrivacyPlan:
    """What a DP run will do and spend, worked out from the pipeline and the data size."""

    noise_multiplier: float
    sample_rate: float
    steps: int  # steps the run plans (epochs x steps per epoch)
    max_steps: int  # the hard stop: the last step at which ε is still within the target
    epsilon: float  # projected ε after ``min(steps, max_steps)`` steps
    epsilon_target: float
    delta: float
    accountant: str
    max_grad_norm: float
    n_train: int
    batch_size: int
    epochs: int
    calibrated: bool  # True: noise found for the target; False: the pipeline gave it

    @property
    def expected_batch_size(self) -> float:
        return self.n_train * self.sample_rate

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def epsilon_after(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float, accountant: str
) -> float:
    """ε of ``steps`` Poisson-subsampled Gaussian steps under the named accountant."""
    if steps <= 0:
        return 0.0
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(noise_multiplier, sample_rate, steps)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RDP's "optimal order is the largest alpha" notice
        return float(acc.get_epsilon(delta=delta))


def calibrate_noise(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str,
    tolerance: float = EPSILON_TOLERANCE,
) -> tuple[float, float]:
    """The smallest noise (to ``tolerance`` in ε) whose ε after ``steps`` is ≤ the target.

    Returns ``(noise_multiplier, epsilon)``. Bisection keeps the invariant
    ``ε(high) ≤ target < ε(low)``, so the answer is never above the target.
    """
    low, high = 0.0, 1.0
    eps_high = epsilon_after(high, sample_rate, steps, delta, accountant)
    while eps_high > target_epsilon:
        low, high = high, high * 2
        if high > MAX_SIGMA:
            raise PrivacyError(
                f"privacy.epsilon: ε {target_epsilon} is out of reach for {steps} steps at "
                f"sampling rate {sample_rate:.4g} (noise multiplier above {MAX_SIGMA:g})"
            )
        eps_high = epsilon_after(high, sample_rate, steps, delta, accountant)
    while target_epsilon - eps_high > tolerance and high - low > 1e-6:
        mid = (low + high) / 2
        eps = epsilon_after(mid, sample_rate, steps, delta, accountant)
        if eps <= target_epsilon:
            high, eps_high = mid, eps
        else:
            low = mid
    return high, eps_high


def last_step_within(
    target_epsilon: float,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str,
) -> int:
    """The largest step count ≤ ``steps`` whose ε stays within the target (ε grows with steps)."""
    if epsilon_after(noise_multiplier, sample_rate, steps, delta, accountant) <= target_epsilon:
        return steps
    low, high = 0, steps  # ε(low) ≤ target < ε(high)
    while high - low > 1:
        mid = (low + high) // 2
        if epsilon_after(noise_multiplier, sample_rate, mid, delta, accountant) <= target_epsilon:
            low = mid
        else:
            high = mid
    return low


def check_delta(delta: float, n_train: int) -> None:
    """δ must be below 1/N: a larger δ allows mechanisms that publish a whole record."""
    if n_train <= 0:
        raise PrivacyError("split: the private training set is empty")
    if delta >= 1.0 / n_train:
        raise PrivacyError(
            f"privacy.delta: δ {delta:g} is not below 1/N = {1.0 / n_train:.3g} for the "
            f"{n_train} private training samples; choose δ < 1/N (e.g. {_suggest(n_train):g})"
        )


def _suggest(n: int) -> float:
    return float(10 ** math.floor(math.log10(1.0 / n) - 1))


def plan_privacy(privacy: PrivacyConfig, n_train: int, batch_size: int, epochs: int) -> PrivacyPlan:
    """The run's privacy plan; refuses δ ≥ 1/N and a target no noise level reaches."""
    check_delta(privacy.delta, n_train)
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    sample_rate = 1.0 / steps_per_epoch
    steps = steps_per_epoch * epochs
    if privacy.noise_multiplier is None:
        sigma, eps = calibrate_noise(
            privacy.epsilon, privacy.delta, sample_rate, steps, privacy.accountant
        )
        max_steps = steps
    else:
        sigma = privacy.noise_multiplier
        max_steps = last_step_within(
            privacy.epsilon, sigma, sample_rate, steps, privacy.delta, privacy.accountant
        )
        if max_steps == 0:
            raise PrivacyError(
                f"privacy.noise_multiplier: {sigma:g} spends more than ε {privacy.epsilon:g} in "
                "a single step; raise the noise multiplier or drop it to calibrate"
            )
        eps = epsilon_after(sigma, sample_rate, max_steps, privacy.delta, privacy.accountant)
    return PrivacyPlan(
        noise_multiplier=sigma,
        sample_rate=sample_rate,
        steps=steps,
        max_steps=max_steps,
        epsilon=eps,
        epsilon_target=privacy.epsilon,
        delta=privacy.delta,
        accountant=privacy.accountant,
        max_grad_norm=privacy.max_grad_norm,
        n_train=n_train,
        batch_size=batch_size,
        epochs=epochs,
        calibrated=privacy.noise_multiplier is None,
    )
