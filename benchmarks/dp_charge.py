"""The evaluation charge for the accuracy benchmark, with or without the trainer's own.

Issue 13's accounting: a private run's released test accuracy is a Gaussian release of
private records, composed into the same accountant as training (one step of sample rate
1), and the *total* must stay within the target ε. When the trainer does this itself
(``PrivacyConfig.eval_noise_multiplier`` exists), this module only defers to it. Until
then it does the same by hand, so the benchmark's figures are charged either way:

- the training noise multiplier is calibrated so that training + one release ≤ target;
- the released accuracy is (correct count + N(0, σ_eval²)) / n_test: a count of correct
  predictions moves by at most 1 when one test record is added or removed, and n_test is
  the size of the provider-declared t10k file, public;
- ε spent composes the training steps taken and the one release (opacus accountant).
"""

from __future__ import annotations

import secrets
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from sealroom.pipeline.schema import Pipeline, PrivacyConfig
from sealroom.privacy.calibrate import plan_privacy

EVAL_NOISE_MULTIPLIER = 20.0  # σ of the correct-count release (≈ 0.2 % accuracy on 10,000)


def trainer_charges_evaluation() -> bool:
    """True once DPTrainer releases and charges evaluation itself (issue 13, helper B)."""
    return "eval_noise_multiplier" in PrivacyConfig.model_fields


def composed_epsilon(
    sigma: float, sample_rate: float, steps: int, delta: float, accountant: str
) -> float:
    """ε of ``steps`` subsampled Gaussian steps followed by one Gaussian release."""
    from opacus.accountants import create_accountant

    acc = create_accountant(mechanism=accountant)
    acc.history = [(sigma, sample_rate, steps), (EVAL_NOISE_MULTIPLIER, 1.0, 1)]
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        return float(acc.get_epsilon(delta=delta))


@dataclass
class ChargedRun:
    """One benchmark run's pipeline and how its evaluation is charged."""

    pipeline: Pipeline
    n_train: int
    release: bool
    how: str = ""

    def released_accuracy(self, trainer: Any) -> float:
        if trainer_charges_evaluation():
            return float(trainer.evaluate("test")["accuracy"])
        exact = float(trainer.evaluate("test")["accuracy"])
        n = len(trainer.splits.test)
        rng = np.random.default_rng(secrets.randbits(128))
        return float((round(exact * n) + rng.normal(0.0, EVAL_NOISE_MULTIPLIER)) / n)

    def spent_epsilon(self, trainer: Any) -> float:
        if trainer_charges_evaluation():
            return float(trainer.spent_epsilon())
        p = trainer.plan
        return composed_epsilon(
            p.noise_multiplier, p.sample_rate, trainer.accounted_steps(), p.delta, p.accountant
        )


def prepare_privacy(run: ChargedRun) -> Pipeline:
    """The pipeline to train: as given, or with σ calibrated to leave room for the release."""
    privacy = run.pipeline.privacy
    assert privacy is not None
    if trainer_charges_evaluation():
        run.how = "evaluation charged by the trainer"
        return run.pipeline
    train = run.pipeline.train
    plan = plan_privacy(privacy, run.n_train, train.batch_size, train.epochs)
    low, high = plan.noise_multiplier, plan.noise_multiplier * 2
    target = privacy.epsilon

    def eps(sigma: float) -> float:
        return composed_epsilon(
            sigma, plan.sample_rate, plan.steps, privacy.delta, privacy.accountant
        )

    while eps(high) > target:
        low, high = high, high * 2
    while high - low > 1e-3 * high:
        mid = (low + high) / 2
        low, high = (low, mid) if eps(mid) <= target else (mid, high)
    run.how = f"evaluation charged here, σ_eval {EVAL_NOISE_MULTIPLIER:g}"
    update = {"noise_multiplier": high}
    return run.pipeline.model_copy(update={"privacy": privacy.model_copy(update=update)})
