"""Metrics match scikit-learn on known values, batch by batch; names are checked per task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics as sk
from torch import nn

from sealroom.errors import ConfigError
from sealroom.train.metrics import METRICS, MetricContext, build_metrics, evaluate

CLASSIFICATION = ["accuracy", "precision", "recall", "f1", "confusion_matrix"]


def run(names: list[str], task: str, outputs: torch.Tensor, targets: torch.Tensor, batch: int = 7):
    metrics = build_metrics(names, MetricContext(task))
    for start in range(0, len(outputs), batch):
        out, tgt = outputs[start : start + batch], targets[start : start + batch]
        for metric in metrics.values():
            metric.update(out, tgt, torch.tensor(0.0))
    return {name: metric.compute() for name, metric in metrics.items()}


def test_classification_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    logits = torch.from_numpy(rng.normal(size=(200, 4))).float()
    logits[torch.arange(200), torch.from_numpy(y_true)] += 1.0  # better than chance
    y_pred = logits.argmax(1).numpy()
    got = run(CLASSIFICATION, "classification", logits, torch.from_numpy(y_true))
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    for name, fn in (("precision", sk.precision_score), ("recall", sk.recall_score)):
        assert got[name] == pytest.approx(fn(y_true, y_pred, average="macro", zero_division=0))
    assert got["f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert got["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred).tolist()


def test_class_never_predicted_counts_as_zero_like_sklearn() -> None:
    y_true = np.array([0, 1, 2, 2])
    y_pred = np.array([0, 0, 2, 2])
    logits = nn.functional.one_hot(torch.from_numpy(y_pred), 3).float()
    got = run(["precision", "recall", "f1"], "classification", logits, torch.from_numpy(y_true))
    assert got["precision"] == pytest.approx(
        sk.precision_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert got["f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))


def test_binary_single_logit_uses_the_threshold() -> None:
    logits = torch.tensor([[-2.0], [0.5], [3.0], [-0.1]])
    targets = torch.tensor([0, 1, 1, 1])
    got = run(["accuracy", "confusion_matrix"], "classification", logits, targets)
    assert got["accuracy"] == 0.75
    assert got["confusion_matrix"] == [[1, 0], [1, 2]]


def test_regression_metrics_match_sklearn() -> None:
    rng = np.random.default_rng(1)
    y = rng.normal(size=100)
    pred = y + rng.normal(scale=0.3, size=100)
    got = run(
        ["mse", "mae", "r2", "rmse"],
        "regression",
        torch.from_numpy(pred).float().unsqueeze(1),
        torch.from_numpy(y).float(),
    )
    assert got["mse"] == pytest.approx(sk.mean_squared_error(y, pred), rel=1e-5)
    assert got["mae"] == pytest.approx(sk.mean_absolute_error(y, pred), rel=1e-5)
    assert got["r2"] == pytest.approx(sk.r2_score(y, pred), rel=1e-5)
    assert got["rmse"] == pytest.approx(np.sqrt(sk.mean_squared_error(y, pred)), rel=1e-5)


def test_segmentation_dice_and_jaccard_on_known_masks() -> None:
    target = torch.zeros(2, 1, 4, 4)
    target[:, :, :2, :] = 1  # 8 foreground pixels each
    logits = torch.full((2, 1, 4, 4), -5.0)
    logits[0, :, :2, :] = 5.0  # sample 0: perfect
    logits[1, :, :1, :] = 5.0  # sample 1: 4 of 8, no false positives
    got = run(["dice", "jaccard", "hausdorff"], "segmentation", logits, target)
    assert got["dice"] == pytest.approx((1.0 + 2 * 4 / (4 + 8)) / 2)
    assert got["jaccard"] == pytest.approx((1.0 + 4 / 8) / 2)
    assert got["hausdorff"] == pytest.approx((0.0 + 1.0) / 2)


def test_multiclass_segmentation_is_one_hot_per_channel() -> None:
    target = torch.tensor([[[[0, 1], [2, 2]]]]).float()
    logits = nn.functional.one_hot(target[:, 0].long(), 3).movedim(-1, 1).float() * 10
    assert run(["dice"], "segmentation", logits, target)["dice"] == pytest.approx(1.0)


def test_metric_for_another_task_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"eval\.metrics\[0\]: 'dice' is not a classification"):
        build_metrics(["dice"], MetricContext("classification"))
    with pytest.raises(ConfigError, match="unknown metric 'os'"):
        build_metrics(["os"], MetricContext("classification"))


def test_evaluate_restores_training_mode_and_reports_loss() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model.train()
    x = torch.randn(10, 2)
    y = torch.randint(0, 2, (10,))
    loss = nn.CrossEntropyLoss()
    got = evaluate(
        model, [(x[:4], y[:4]), (x[4:], y[4:])], loss, ["loss"], MetricContext("classification")
    )
    assert model.training
    with torch.no_grad():
        expected = loss(model.eval()(x), y).item()
    assert got["loss"] == pytest.approx(expected, rel=1e-5)


def test_registry_lists_the_documented_metrics() -> None:
    for name in [
        "loss",
        *CLASSIFICATION,
        "dice",
        "jaccard",
        "iou",
        "hausdorff",
        "mse",
        "mae",
        "r2",
    ]:
        assert name in METRICS


@settings(max_examples=40, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=1, max_size=60),
    seed=st.integers(0, 2**16),
    batch=st.integers(1, 17),
)
def test_batching_never_changes_classification_metrics(labels, seed, batch) -> None:
    y_true = np.array(labels)
    logits = torch.from_numpy(np.random.default_rng(seed).normal(size=(len(labels), 4))).float()
    y_pred = logits.argmax(1).numpy()
    got = run(CLASSIFICATION, "classification", logits, torch.from_numpy(y_true), batch=batch)
    assert got["accuracy"] == pytest.approx(sk.accuracy_score(y_true, y_pred))
    assert got["f1"] == pytest.approx(sk.f1_score(y_true, y_pred, average="macro", zero_division=0))
    assert got["recall"] == pytest.approx(
        sk.recall_score(y_true, y_pred, average="macro", zero_division=0)
    )
    assert got["confusion_matrix"] == sk.confusion_matrix(y_true, y_pred, labels=range(4)).tolist()


def _task_batch(task: str) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    if task == "classification":
        return torch.randn(12, 3, generator=gen), torch.arange(12) % 3
    if task == "segmentation":
        target = torch.zeros(4, 1, 6, 6)
        target[:, :, 1:4, 1:4] = 1
        return torch.randn(4, 1, 6, 6, generator=gen) + 3 * target - 1, target
    target = torch.randn(12, 1, generator=gen)
    return target + 0.1 * torch.randn(12, 1, generator=gen), target


@pytest.mark.parametrize("name", METRICS.names())
def test_every_registered_metric_computes_on_each_of_its_tasks(name: str) -> None:
    for task in sorted(METRICS.get(name).tasks):
        outputs, targets = _task_batch(task)
        value = run([name], task, outputs, targets)[name]
        if name == "confusion_matrix":
            assert isinstance(value, list) and sum(map(sum, value)) == len(targets)
        else:
            assert isinstance(value, float) and np.isfinite(value), (name, task, value)
