"""Membership inference: AUC and TPR-at-FPR arithmetic, and DP versus non-private on digits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import beta
from sklearn.metrics import roc_auc_score
from torch import nn

from sealroom.data import ArrayDataset, MemoryTree
from sealroom.data.loaders.idx import idx_bytes
from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import Pipeline
from sealroom.privacy.attack import (
    calibrated_loss_attack,
    clopper_pearson,
    membership_comparison,
    roc_auc,
    score_attack,
    tpr_at_fpr,
)
from sealroom.privacy.noise import SeededRandom


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_auc_matches_scikit_learn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    members = rng.normal(0.5, 1, 50).round(1)  # rounding makes ties
    others = rng.normal(0, 1, 70).round(1)
    labels = np.r_[np.ones(50), np.zeros(70)]
    assert roc_auc(members, others) == pytest.approx(roc_auc_score(labels, np.r_[members, others]))


def _digits_tree(n: int) -> MemoryTree:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.clip(digits.images[:n] * 16, 0, 255).astype(np.uint8)
    labels = digits.target[:n].astype(np.uint8)
    return MemoryTree(
        {"train-images-idx3-ubyte": idx_bytes(images), "train-labels-idx1-ubyte": idx_bytes(labels)}
    )


def _digits_pipeline(epsilon: float) -> Pipeline:
    return Pipeline.model_validate(
        {
            "name": "digits-mia",
            "datasets": [
                {
                    "id": "digits",
                    "source": {
                        "format": "idx",
                        "images": "train-images-idx3-ubyte",
                        "labels": "train-labels-idx1-ubyte",
                    },
                }
            ],
            "split": {"train": 0.3, "val": 0.35, "test": 0.35, "seed": 0},
            "model": {
                "model": {
                    "format": "declarative",
                    "layers": [
                        {"type": "flatten"},
                        {"type": "linear", "params": {"in_features": 64, "out_features": 128}},
                        {"type": "tanh"},
                        {"type": "linear", "params": {"in_features": 128, "out_features": 10}},
                    ],
                },
                "input_shape": [1, 8, 8],
            },
            "loss": {"components": {"ce": {"name": "cross_entropy"}}, "expression": "ce"},
            "train": {
                "optimizer": {"name": "adam", "params": {"lr": 0.01}},
                "epochs": 40,
                "batch_size": 32,
                "device": "cpu",
            },
            "eval": {"metrics": ["loss", "accuracy"], "plots": False},
            "privacy": {"epsilon": epsilon, "delta": 1e-4, "accountant": "rdp"},
        }
    )


@pytest.mark.parametrize("mode", ["hooks", "fused"])
def test_dp_model_resists_the_attack_that_beats_the_non_private_one(mode: str) -> None:
    result = membership_comparison(
        _digits_pipeline(1.0),
        {"digits": _digits_tree(600)},
        MemoryTree({}),
        public=True,
        noise=SeededRandom(0),
        grad_sample_mode=mode,
    )
    assert result.grad_sample_mode == mode  # the pipeline's default (hooks) is overridden
    assert result.members == 180
    assert result.auc_non_private > 0.58  # 40 epochs on 180 records: partly memorised
    assert result.auc_private < 0.56
    assert result.auc_private < result.auc_non_private - 0.03
    assert result.epsilon <= 1.0
    for attack in (result.private, result.non_private):
        assert attack.fprs() == [0.01, 0.001]
        rate = attack.at(0.01)
        assert rate.fpr <= 0.01 and rate.members == rate.non_members == 180
        assert rate.tpr_ci[0] <= rate.tpr <= rate.tpr_ci[1]


def test_comparison_refuses_data_not_declared_public() -> None:
    with pytest.raises(PrivacyError, match="public data only"):
        membership_comparison(
            _digits_pipeline(1.0), {"digits": _digits_tree(60)}, MemoryTree({}), public=False
        )


def test_comparison_refuses_an_unknown_mode() -> None:
    with pytest.raises(PrivacyError, match="grad_sample_mode 'fast' is not one of hooks, fused"):
        membership_comparison(
            _digits_pipeline(1.0),
            {"digits": _digits_tree(60)},
            MemoryTree({}),
            public=True,
            grad_sample_mode="fast",
        )


# --------------------------------------------------------------------------- TPR at fixed FPR


def test_tpr_at_fpr_by_hand() -> None:
    others = np.arange(100.0)  # non-member scores 0 … 99
    members = np.array([99.5, 98.5, 98.0, 50.0, 200.0])
    # FPR 1 %: one false positive allowed, threshold = second-highest non-member score (98)
    rate = tpr_at_fpr(members, others, 0.01)
    assert (rate.threshold, rate.false_positives, rate.true_positives) == (98.0, 1, 3)
    assert (rate.tpr, rate.fpr) == (0.6, 0.01)
    # no false positive allowed (0.1 % of 100 rounds down to 0): threshold = highest (99)
    for fpr in (0.0, 0.001):
        rate = tpr_at_fpr(members, others, fpr)
        assert (rate.threshold, rate.false_positives, rate.true_positives) == (99.0, 0, 2)


def test_tpr_at_fpr_counts_exactly_at_10000_non_members() -> None:
    others = np.arange(10_000.0)
    rate = tpr_at_fpr(np.array([9990.5, 9988.0]), others, 0.001)  # 0.001 * 10000 = 10
    assert (rate.threshold, rate.false_positives, rate.true_positives) == (9989.0, 10, 1)
    assert tpr_at_fpr(np.array([1.0]), others, 0.01).false_positives == 100


def test_ties_at_the_threshold_are_not_called_members() -> None:
    rate = tpr_at_fpr(np.array([1.0, 2.0]), np.ones(100), 0.01)
    assert (rate.threshold, rate.false_positives, rate.true_positives) == (1.0, 0, 1)


def test_bad_scores_are_refused() -> None:
    with pytest.raises(PrivacyError, match="non-empty 1-d"):
        tpr_at_fpr(np.array([]), np.ones(3), 0.01)
    with pytest.raises(PrivacyError, match="finite"):
        tpr_at_fpr(np.array([np.inf]), np.ones(3), 0.01)
    with pytest.raises(PrivacyError, match=r"fpr 1\.5"):
        tpr_at_fpr(np.ones(3), np.ones(3), 1.5)


def test_clopper_pearson_exact_values() -> None:
    low, high = clopper_pearson(3, 10)
    assert low == pytest.approx(beta.ppf(0.025, 3, 8)) and low == pytest.approx(0.0667395, abs=1e-6)
    assert high == pytest.approx(beta.ppf(0.975, 4, 7)) and high == pytest.approx(
        0.6524529, abs=1e-6
    )
    # k = 0 and k = n have closed forms: 1 − (α/2)^(1/n) and (α/2)^(1/n)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(10, 10) == pytest.approx((0.025 ** (1 / 10), 1.0))
    with pytest.raises(PrivacyError, match="k=11, n=10"):
        clopper_pearson(11, 10)


@pytest.mark.parametrize("seed", [0, 1])
def test_score_attack_intervals_hold_their_estimates(seed: int) -> None:
    rng = np.random.default_rng(seed)
    members, others = rng.normal(0.3, 1, 2000), rng.normal(0, 1, 3000)
    result = score_attack(members, others)
    assert result.auc == roc_auc(members, others)
    for rate in result.rates:
        assert rate.tpr_ci[0] <= rate.tpr <= rate.tpr_ci[1]
        assert rate.fpr_ci[0] <= rate.fpr <= rate.fpr_ci[1]
        assert rate.fpr <= rate.fpr_target
    assert result.at(0.01).tpr >= result.at(0.001).tpr
    with pytest.raises(PrivacyError, match=r"no rate at FPR 0\.05"):
        result.at(0.05)


def test_calibration_by_the_model_itself_leaves_nothing_to_attack() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    rng = np.random.default_rng(0)
    data = ArrayDataset(rng.random((50, 1, 2, 2), dtype=np.float32), rng.integers(0, 3, 50))
    result = calibrated_loss_attack(model, model, data, data)
    assert result.auc == 0.5  # every score is 0: all ties
    assert all(rate.true_positives == 0 for rate in result.rates)
