"""The accuracy benchmark's evaluation charge: training + the accuracy release stay within ε.

Issue 13: the published ScatterNet figures do not charge their evaluation; ours must. Until
the trainer charges evaluation itself, benchmarks/dp_charge.py calibrates the training noise
so that training and one Gaussian release of the correct count compose to at most the
target, and reports the composed ε.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))

from dp_charge import (  # noqa: E402
    ChargedRun,
    composed_epsilon,
    prepare_privacy,
    trainer_charges_evaluation,
)

from sealroom.pipeline.compose import compose  # noqa: E402
from sealroom.privacy.calibrate import epsilon_after, plan_privacy  # noqa: E402

SCENARIO = ROOT / "scenarios" / "dp-fashion"


def test_the_release_costs_privacy_on_top_of_training() -> None:
    train_only = epsilon_after(1.0, 0.125, 320, 1e-5, "rdp")
    assert composed_epsilon(1.0, 0.125, 320, 1e-5, "rdp") > train_only


@pytest.mark.skipif(trainer_charges_evaluation(), reason="the trainer charges evaluation itself")
def test_training_noise_leaves_room_for_the_release_within_the_target() -> None:
    base = compose(SCENARIO)
    assert base.privacy is not None
    privacy = base.privacy.model_copy(update={"accountant": "rdp", "epsilon": 3.0})
    train = base.train.model_copy(update={"epochs": 10})
    pipeline = base.model_copy(update={"privacy": privacy, "train": train})
    run = ChargedRun(pipeline, n_train=60_000, release=True)
    charged = prepare_privacy(run).privacy
    assert charged is not None and charged.noise_multiplier is not None
    uncharged = plan_privacy(privacy, 60_000, train.batch_size, train.epochs)
    assert charged.noise_multiplier > uncharged.noise_multiplier
    total = composed_epsilon(
        charged.noise_multiplier, uncharged.sample_rate, uncharged.steps, 1e-5, "rdp"
    )
    assert 2.9 < total <= 3.0
    assert "charged here" in run.how
