"""Membership inference: AUC arithmetic, and DP versus non-private on public digits."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from sealroom.data import MemoryTree
from sealroom.data.loaders.idx import idx_bytes
from sealroom.errors import PrivacyError
from sealroom.pipeline.schema import Pipeline
from sealroom.privacy.attack import membership_comparison, roc_auc
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


def test_dp_model_resists_the_attack_that_beats_the_non_private_one() -> None:
    result = membership_comparison(
        _digits_pipeline(1.0),
        {"digits": _digits_tree(600)},
        MemoryTree({}),
        public=True,
        noise=SeededRandom(0),
    )
    assert result.members == 180
    assert result.auc_non_private > 0.58  # 40 epochs on 180 records: partly memorised
    assert result.auc_private < 0.56
    assert result.auc_private < result.auc_non_private - 0.03
    assert result.epsilon <= 1.0


def test_comparison_refuses_data_not_declared_public() -> None:
    with pytest.raises(PrivacyError, match="public data only"):
        membership_comparison(
            _digits_pipeline(1.0), {"digits": _digits_tree(60)}, MemoryTree({}), public=False
        )
