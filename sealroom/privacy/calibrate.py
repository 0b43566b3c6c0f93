"""Plan a DP-SGD run before it starts: noise multiplier, sampling rate, steps and projected ε.

The plan is what the budget reserves and what the trainer enforces. Its ε covers the whole
run: the training steps *and* the planned Gaussian releases of evaluation metrics
(:mod:`sealroom.privacy.evaluation`), composed in one accountant history of
``(noise_multiplier, sample_rate, steps)`` entries (an evaluation release is one step at
sample rate 1). Calibration searches the training noise multiplier so that this total is at
most the target (never above) and within ``EPSILON_TOLERANCE`` of it.

How training is charged follows how batches are drawn:

* Poisson sampling (the default): one expected batch per ``ceil(N / batch_size)``, each
  step a subsampled Gaussian at that rate (Opacus' convention; amplification holds because
  the room's secure generator draws the batches).
* Shuffled fixed-size batches (``poisson_sampling: false``): the consumer knows the shuffle
  seed, so there is no amplification. Each record is in one batch per epoch, so an epoch is
  charged as one Gaussian step at sample rate 1 and a started epoch is charged in full.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import PrivacyConfig

EPSILON_TOLERANCE = 0.01  # calibrated ε lies in [target - tolerance, target]
MAX_SIGMA = 1e4

History = Sequence[tuple[float, float, int]]  # (noise multiplier, sample rate, steps)

SAMPLING_ACCOUNTING = {
    "poisson": "each step a Poisson-subsampled Gaussian mechanism at the sample rate",
    "shuffle": (
        "no amplification by sampling: the shuffle seed is the consumer's, so each epoch "
        "(every record in one batch) is charged as one Gaussian step at sample rate 1"
    ),
}


@dataclass(frozen=True)
class PrivacyPlan:
    """What a DP run will do and spend, worked out from the pipeline and the data size."""

    noise_multiplier: float
    sample_rate: float
    steps: int  # optimizer steps the run plans (epochs x steps per epoch)
    max_steps: int  # the hard stop: the last step at which ε is still within the target
    epsilon: float  # projected ε of training up to max_steps plus the planned evaluations
    epsilon_target: float
    delta: float
    accountant: str
    max_grad_norm: float
    n_train: int
    batch_size: int
    epochs: int
    calibrated: bool  # True: noise found for the target; False: the pipeline gave it
    sampling: str = "poisson"  # "poisson" or "shuffle" (see SAMPLING_ACCOUNTING)
    steps_per_epoch: int = 1
    eval_noise_multiplier: float = 0.0  # noise std / L2 sensitivity of each evaluation release
    eval_releases: int = 0  # evaluation releases planned (and allowed)
    epsilon_training: float = 0.0  # projected ε of training alone

    @property
    def expected_batch_size(self) -> float:
        return self.n_train * self.sample_rate

    def training_history(self, steps: int) -> list[tuple[float, float, int]]:
        """The accountant history of ``steps`` optimizer steps, as this sampling is charged."""
        if steps <= 0:
            return []
        if self.sampling == "poisson":
            return [(self.noise_multiplier, self.sample_rate, steps)]
        return [(self.noise_multiplier, 1.0, math.ceil(steps / self.steps_per_epoch))]

    def evaluation_history(self, releases: int) -> list[tuple[float, float, int]]:
        return [(self.eval_noise_multiplier, 1.0, releases)] if releases > 0 else []

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def epsilon_of(history: History, delta: float, accountant: str) -> float:
    """ε of a composed history of (sub)sampled Gaussian mechanisms under the named accountant."""
    entries = tuple((float(s), float(q), int(k)) for s, q, k in history if k > 0)
    return _epsilon_of(entries, float(delta), accountant) if entries else 0.0


@functools.lru_cache(maxsize=1024)
def _epsilon_of(
    entries: tuple[tuple[float, float, int], ...], delta: float, accountant: str
) -> float:
    # Cached: a run asks for the same history at each epoch, evaluation and report.
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = list(entries)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RDP's "optimal order is the largest alpha" notice
        return float(acc.get_epsilon(delta=delta))


def epsilon_after(
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: str,
    extra: History = (),
) -> float:
    """ε of ``steps`` Gaussian steps at ``sample_rate``, composed with the ``extra`` history."""
    return epsilon_of([(noise_multiplier, sample_rate, steps), *extra], delta, accountant)


def calibrate_noise(
    target_epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    accountant: str,
    tolerance: float = EPSILON_TOLERANCE,
    extra: History = (),
) -> tuple[float, float]:
    """The smallest noise (to ``tolerance`` in ε) whose ε after ``steps`` (+ ``extra``) is ≤ target.

    Returns ``(noise_multiplier, epsilon)``. Bisection keeps the invariant
    ``ε(high) ≤ target < ε(low)``, so the answer is never above the target.
    """
    floor = epsilon_of(extra, delta, accountant)
    if floor >= target_epsilon:
        raise PrivacyError(
            f"privacy.epsilon: ε {target_epsilon:g} is spent by the planned evaluation releases "
            f"alone (ε {floor:.3f}); raise privacy.eval_noise_multiplier or lower eval_releases"
        )
    low, high = 0.0, 1.0
    eps_high = epsilon_after(high, sample_rate, steps, delta, accountant, extra)
    while eps_high > target_epsilon:
        low, high = high, high * 2
        if high > MAX_SIGMA:
            raise PrivacyError(
                f"privacy.epsilon: ε {target_epsilon} is out of reach for {steps} steps at "
                f"sampling rate {sample_rate:.4g} (noise multiplier above {MAX_SIGMA:g})"
            )
        eps_high = epsilon_after(high, sample_rate, steps, delta, accountant, extra)
    while target_epsilon - eps_high > tolerance and high - low > 1e-6:
        mid = (low + high) / 2
        eps = epsilon_after(mid, sample_rate, steps, delta, accountant, extra)
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
    extra: History = (),
) -> int:
    """The largest step count ≤ ``steps`` whose ε (+ ``extra``) stays within the target."""

    def within(k: int) -> bool:
        eps = epsilon_after(noise_multiplier, sample_rate, k, delta, accountant, extra)
        return eps <= target_epsilon

    if within(steps):
        return steps
    if not within(0):
        return 0
    low, high = 0, steps  # ε(low) ≤ target < ε(high)
    while high - low > 1:
        mid = (low + high) // 2
        if within(mid):
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
    """The run's privacy plan (training + planned evaluations ≤ ε); refuses δ ≥ 1/N and a
    target no noise level reaches."""
    check_delta(privacy.delta, n_train)
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    sample_rate = 1.0 / steps_per_epoch
    steps = steps_per_epoch * epochs
    poisson = privacy.poisson_sampling
    # What the accountant composes for training: optimizer steps, or whole epochs at rate 1.
    rate, units, per_unit = (sample_rate, steps, 1) if poisson else (1.0, epochs, steps_per_epoch)
    evals = (
        [(privacy.eval_noise_multiplier, 1.0, privacy.eval_releases)]
        if privacy.eval_releases
        else []
    )
    acc, delta = privacy.accountant, privacy.delta
    if privacy.noise_multiplier is None:
        sigma, eps = calibrate_noise(privacy.epsilon, delta, rate, units, acc, extra=evals)
        max_units = units
    else:
        sigma = privacy.noise_multiplier
        max_units = last_step_within(privacy.epsilon, sigma, rate, units, delta, acc, evals)
        if max_units == 0:
            what = "a single step" if poisson else "a single epoch (no amplification)"
            raise PrivacyError(
                f"privacy.noise_multiplier: {sigma:g} spends more than ε {privacy.epsilon:g} in "
                f"{what} with the planned evaluation; raise the noise multiplier or drop it "
                "to calibrate"
            )
        eps = epsilon_after(sigma, rate, max_units, delta, acc, evals)
    return PrivacyPlan(
        noise_multiplier=sigma,
        sample_rate=sample_rate,
        steps=steps,
        max_steps=max_units * per_unit,
        epsilon=eps,
        epsilon_target=privacy.epsilon,
        delta=delta,
        accountant=acc,
        max_grad_norm=privacy.max_grad_norm,
        n_train=n_train,
        batch_size=batch_size,
        epochs=epochs,
        calibrated=privacy.noise_multiplier is None,
        sampling="poisson" if poisson else "shuffle",
        steps_per_epoch=steps_per_epoch,
        eval_noise_multiplier=privacy.eval_noise_multiplier,
        eval_releases=privacy.eval_releases,
        epsilon_training=epsilon_after(sigma, rate, max_units, delta, acc),
    )
