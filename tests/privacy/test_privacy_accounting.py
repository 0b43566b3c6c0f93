"""Accounting matches sampling, and training and evaluation compose in one history.

Finding: "Shuffled batches are charged Poisson ε": with ``poisson_sampling: false`` the
batches come from a generator seeded by the consumer, so there is no amplification; the
dp-mnist settings charged ε 3.0 correspond to ε 7.56.
"""

from __future__ import annotations

import json
import warnings

import pytest
from opacus.accountants import create_accountant

from sealroom.data import MemoryTree
from sealroom.pipeline.schema import PrivacyConfig
from sealroom.privacy.calibrate import epsilon_after, epsilon_of, plan_privacy
from sealroom.privacy.noise import SeededRandom
from sealroom.privacy.trainer import DPTrainer
from sealroom.train.models import build_model
from sealroom.train.run import prepare_splits
from tests.privacy.helpers import private_pipeline
from tests.train.tiny import idx_tree

# The dp-mnist scenario: 1437 training records, batch 256, 15 epochs, calibrated σ 2.4375.
DP_MNIST = {"n_train": 1437, "batch_size": 256, "epochs": 15}
DP_MNIST_SIGMA = 2.4375


def test_dp_mnist_poisson_settings_are_charged_7_56_when_shuffled() -> None:
    poisson = PrivacyConfig(
        epsilon=8.0, delta=1e-5, noise_multiplier=DP_MNIST_SIGMA, eval_releases=0
    )
    shuffled = poisson.model_copy(update={"poisson_sampling": False})
    plan_p = plan_privacy(poisson, **DP_MNIST)
    plan_s = plan_privacy(shuffled, **DP_MNIST)
    assert plan_p.max_steps == plan_s.max_steps == 90  # 6 steps an epoch, 15 epochs
    assert plan_p.epsilon_training == pytest.approx(3.0, abs=0.01)  # what was charged before
    # No amplification: 15 Gaussian steps on every record (sample rate 1), ε 7.56 at δ 1e-5.
    assert plan_s.epsilon_training == pytest.approx(7.566, abs=0.01)
    assert plan_s.training_history(90) == [(DP_MNIST_SIGMA, 1.0, 15)]
    assert plan_s.training_history(85) == [(DP_MNIST_SIGMA, 1.0, 15)]  # a started epoch counts
    assert plan_s.training_history(84) == [(DP_MNIST_SIGMA, 1.0, 14)]


def test_calibrating_shuffled_batches_needs_more_noise_for_the_same_target() -> None:
    cfg = PrivacyConfig(epsilon=3.0, delta=1e-5, accountant="rdp")
    plan_p = plan_privacy(cfg, **DP_MNIST)
    plan_s = plan_privacy(cfg.model_copy(update={"poisson_sampling": False}), **DP_MNIST)
    assert plan_s.noise_multiplier > 1.5 * plan_p.noise_multiplier
    history = plan_s.training_history(plan_s.max_steps) + plan_s.evaluation_history(1)
    assert plan_s.epsilon == pytest.approx(epsilon_of(history, 1e-5, "rdp"))
    assert plan_s.epsilon <= 3.0


def _fit(privacy: dict[str, object], epochs: int, seed: int = 2) -> DPTrainer:
    pipeline = private_pipeline({"accountant": "rdp", **privacy}, epochs=epochs)
    splits = prepare_splits(pipeline, {"blobs": idx_tree()})
    model = build_model(pipeline.model, MemoryTree({}))
    trainer = DPTrainer(pipeline, model, splits, noise=SeededRandom(seed))
    trainer.fit()
    return trainer


def test_shuffled_run_is_charged_per_epoch_stated_and_stopped_at_an_epoch_boundary() -> None:
    trainer = _fit({"poisson_sampling": False, "epsilon": 1.5, "noise_multiplier": 4.0}, epochs=6)
    plan = trainer.plan
    assert plan.sampling == "shuffle" and plan.steps_per_epoch == 6  # 90 records, batch 16
    assert 0 < plan.max_steps < plan.steps and plan.max_steps % plan.steps_per_epoch == 0
    steps = trainer.accounted_steps()
    assert steps == plan.max_steps
    epochs_run = steps // plan.steps_per_epoch
    assert trainer.spent_epsilon() == pytest.approx(
        epsilon_after(4.0, 1.0, epochs_run, 1e-3, "rdp")
    )
    # one more epoch and the planned evaluation would pass the target
    assert epsilon_after(4.0, 1.0, epochs_run + 1, 1e-3, "rdp", [(10.0, 1.0, 1)]) > 1.5
    assert any("no amplification" in line for line in trainer.lines)
    report = json.loads(trainer.extra_outputs()["privacy_report.json"])
    assert report["sampling"] == "shuffle"
    assert "no amplification" in report["sampling_accounting"]
    assert "without amplification" in report["statement"]
    assert report["history"] == [[4.0, 1.0, epochs_run]]


def test_poisson_run_spends_what_opacus_accountant_says_for_its_steps() -> None:
    trainer = _fit({"epsilon": 3.0}, epochs=2)
    # the optimizer hook's own record of the run, composed by Opacus without sealroom's help
    acc = create_accountant(mechanism="rdp")
    acc.history = list(trainer.accountant.history)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own = acc.get_epsilon(delta=1e-3)
    assert trainer.spent_epsilon() == pytest.approx(own)
    trainer.evaluate("test")
    acc.history.append((trainer.plan.eval_noise_multiplier, 1.0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert trainer.spent_epsilon() == pytest.approx(acc.get_epsilon(delta=1e-3))
