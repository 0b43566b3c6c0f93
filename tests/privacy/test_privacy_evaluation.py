"""Private evaluation: noisy sufficient statistics, stated sensitivity, charged to the same ε.

Finding: "val/test metrics leave a private run unnoised and uncounted".
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import Tensor, nn

from sealroom.data import MemoryTree
from sealroom.errors import ConfigError, PrivacyError
from sealroom.pipeline.schema import LossConfig, PrivacyConfig
from sealroom.privacy.calibrate import epsilon_of, plan_privacy
from sealroom.privacy.evaluation import (
    add_noise,
    check_private_metrics,
    metrics_from,
    release_evaluation,
    sensitivity,
    statistic_groups,
    sufficient_statistics,
)
from sealroom.privacy.noise import SeededRandom
from sealroom.privacy.trainer import DPTrainer
from sealroom.train.components.composite import CompositeLoss
from sealroom.train.loop import TensorBatches, Trainer
from sealroom.train.metrics import MetricContext, evaluate
from sealroom.train.models import build_model
from sealroom.train.run import prepare_splits, run_pipeline
from tests.privacy.helpers import private_pipeline
from tests.train.tiny import idx_tree

CE = LossConfig.model_validate(
    {"components": {"ce": {"name": "cross_entropy"}}, "expression": "ce"}
)
MSE = LossConfig.model_validate({"components": {"m": {"name": "mse"}}, "expression": "m"})
NAMES = ["loss", "accuracy", "precision", "recall", "f1"]


def _trainer(seed: int = 0, **privacy: object) -> DPTrainer:
    pipeline = private_pipeline({"accountant": "rdp", **privacy})
    splits = prepare_splits(pipeline, {"blobs": idx_tree()})
    torch.manual_seed(0)
    model = build_model(pipeline.model, MemoryTree({}))
    return DPTrainer(pipeline, model, splits, noise=SeededRandom(seed))


def test_spent_epsilon_includes_evaluation_and_stays_within_the_target() -> None:
    trainer = _trainer()
    trainer.fit()
    training_only = trainer.spent_epsilon()
    trainer.evaluate("test")
    spent = trainer.spent_epsilon()
    assert training_only < spent <= trainer.plan.epsilon_target == 3.0
    (release,) = trainer.releases
    assert release.epsilon_share == pytest.approx(spent - training_only)
    with pytest.raises(PrivacyError, match="reserved 1 evaluation release"):
        trainer.evaluate("val")  # a second release was not planned: refused, not charged
    assert trainer.spent_epsilon() == spent


@pytest.mark.parametrize("accountant", ["rdp", "prv"])
def test_plan_calibrates_training_plus_evaluation_to_the_target(accountant: str) -> None:
    cfg = PrivacyConfig(epsilon=3.0, delta=1e-5, accountant=accountant)
    plan = plan_privacy(cfg, 10_000, 256, 3)
    bare = plan_privacy(cfg.model_copy(update={"eval_releases": 0}), 10_000, 256, 3)
    assert plan.noise_multiplier > bare.noise_multiplier  # training gives up a share
    history = plan.training_history(plan.steps) + plan.evaluation_history(1)
    assert history[-1] == (10.0, 1.0, 1)
    total = epsilon_of(history, 1e-5, accountant)
    assert total == pytest.approx(plan.epsilon) and 2.98 <= total <= 3.0
    assert plan.epsilon_training < total


def test_evaluation_alone_beyond_the_target_is_refused() -> None:
    cfg = PrivacyConfig(epsilon=0.1, delta=1e-5, accountant="rdp", eval_noise_multiplier=1.0)
    with pytest.raises(PrivacyError, match="evaluation releases alone"):
        plan_privacy(cfg, 10_000, 256, 3)


def test_noise_is_present_seeded_and_the_release_states_its_sensitivity() -> None:
    released = []
    exact = Trainer.evaluate(_trainer(0), "test")  # the same model, evaluated without noise
    for seed in (0, 0, 1):
        trainer = _trainer(seed)
        released.append(trainer.evaluate("test"))
    assert released[0] == released[1] != released[2]
    assert released[0]["accuracy"] != exact["accuracy"]
    report = json.loads(trainer.extra_outputs()["privacy_report.json"])
    (entry,) = report["evaluation"]["releases"]
    # (correct, wrong) + confusion matrix + clipped loss sum (norm 1 each): Δ = √3
    assert entry["l2_sensitivity"] == pytest.approx(math.sqrt(3))
    assert entry["statistics"]["outcome"]["noise_std"] == pytest.approx(10 * math.sqrt(3))
    assert entry["statistics"]["confusion"]["noise_std"] == pytest.approx(10 * math.sqrt(3))
    assert entry["statistics"]["loss"]["noise_std"] == pytest.approx(100 * math.sqrt(3))
    assert report["history"][-1] == [10.0, 1.0, 1]
    assert "not cover" not in report["statement"] and "evaluation metrics" in report["statement"]


def _fixed_model_and_data(n: int = 6000) -> tuple[nn.Module, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, 5, generator=gen)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    with torch.no_grad():
        model.weight.copy_(
            torch.tensor([[-1.0, -0.5, 0, 0, 0], [1, 0.5, 0, 0, 0], [0, 0, 2, 0, 0]])
        )
    return model, x, y


def test_released_metrics_match_exact_within_the_stated_noise() -> None:
    model, x, y = _fixed_model_and_data()
    exact = evaluate(
        model,
        TensorBatches(x, y, 1000),
        nn.CrossEntropyLoss(),
        NAMES,
        MetricContext("classification"),
    )
    per_record = CompositeLoss(CE, reduction="none")
    for seed in range(5):
        noisy, release = release_evaluation(
            model, TensorBatches(x, y, 1000), split="test", names=NAMES, task="classification",
            threshold=0.5, clip=10.0, noise_multiplier=10.0, noise=SeededRandom(seed),
            per_record_loss=per_record,
        )  # fmt: skip
        std = release.noise_std  # per count
        for name in ("accuracy", "precision", "recall", "f1"):
            # each metric is a ratio of counts of ~n/3 records or more; 6 std of ~3 cells each
            assert abs(noisy[name] - exact[name]) < 6 * 3 * std / (len(x) / 3), name
            assert noisy[name] != exact[name]
        assert abs(noisy["loss"] - exact["loss"]) < 6 * std * 10.0 / len(x) + 1e-9


def test_the_noise_has_the_stated_standard_deviation() -> None:
    groups = statistic_groups("classification", ["accuracy", "loss"], clip=4.0)
    assert set(groups) == {"outcome", "loss"} and sensitivity(groups) == pytest.approx(math.sqrt(2))
    sums = {
        "outcome": torch.tensor([700.0, 300.0], dtype=torch.float64),
        "loss": torch.tensor([80.0], dtype=torch.float64),
    }
    draws = [add_noise(sums, groups, 10 * math.sqrt(2), SeededRandom(s)) for s in range(400)]
    outcome = torch.stack([d["outcome"] - sums["outcome"] for d in draws])
    loss = torch.stack([d["loss"] - sums["loss"] for d in draws])
    assert outcome.std().item() == pytest.approx(10 * math.sqrt(2), rel=0.1)
    assert loss.std().item() == pytest.approx(4.0 * 10 * math.sqrt(2), rel=0.1)


def _normalised_change(
    task: str,
    names: list[str],
    loss: LossConfig | None,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    extra_x: Tensor,
    extra_y: Tensor,
) -> tuple[float, float]:
    """L2 change of the normalised statistics when one (extreme) record is added, and Δ."""
    groups = statistic_groups(task, names, clip=2.0)
    per_record = None if loss is None else CompositeLoss(loss, reduction="none")

    def stats(xs: Tensor, ys: Tensor) -> dict[str, Tensor]:
        return sufficient_statistics(
            model, TensorBatches(xs, ys, 64), per_record, groups, task, 0.5, 2.0
        )

    a = stats(x, y)
    b = stats(torch.cat([x, extra_x]), torch.cat([y, extra_y]))
    change = sum(float((((b[k] - a[k]) / g.bound) ** 2).sum()) for k, g in groups.items())
    return math.sqrt(change), sensitivity(groups)


def test_one_extreme_record_moves_the_statistics_by_at_most_the_sensitivity() -> None:
    model, x, y = _fixed_model_and_data(200)
    outlier = torch.full((1, 5), -1e6)  # a huge loss: clipped at 2.0
    change, delta = _normalised_change(
        "classification", [*NAMES, "confusion_matrix"], CE, model, x, y, outlier, torch.tensor([2])
    )
    assert 1.0 < change <= delta + 1e-9
    reg = nn.Linear(3, 1)
    xr, yr = torch.randn(100, 3), torch.randn(100, 1)
    change, delta = _normalised_change(
        "regression",
        ["loss", "mse", "mae"],
        MSE,
        reg,
        xr,
        yr,
        torch.full((1, 3), 1e8),
        torch.zeros(1, 1),
    )
    assert 1.5 < change <= delta + 1e-9
    seg = nn.Conv2d(1, 1, 1)
    xs = torch.randn(20, 1, 8, 8)
    ys = (torch.rand(20, 1, 8, 8) > 0.5).float()
    change, delta = _normalised_change(
        "segmentation",
        ["loss", "dice", "jaccard", "hausdorff"],
        MSE,
        seg,
        xs,
        ys,
        torch.full((1, 1, 8, 8), -1e6),
        torch.ones(1, 1, 8, 8),
    )
    assert 1.0 < change <= delta + 1e-9


def test_metrics_that_are_not_bounded_sums_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"metrics\[1\]: 'r2' is not released under privacy"):
        check_private_metrics("regression", ["mse", "r2"])
    with pytest.raises(ConfigError, match="'r2' is not released"):
        check_private_metrics("segmentation", ["dice", "r2"])
    check_private_metrics("segmentation", ["dice", "jaccard", "hausdorff", "hausdorff95"])
    check_private_metrics("classification", ["loss", "accuracy", "confusion_matrix"])


def test_a_private_run_releases_only_noisy_metrics_and_a_noisy_confusion_matrix() -> None:
    pipeline = private_pipeline({"accountant": "rdp"})
    outcome = run_pipeline(
        pipeline, {"blobs": idx_tree()}, MemoryTree({}),
        trainer_factory=lambda *a: DPTrainer(*a, noise=SeededRandom(0)),
    )  # fmt: skip
    metrics = json.loads(outcome.outputs["metrics.json"])["metrics"]
    matrix = metrics["confusion_matrix"]
    assert len(matrix) == 3 and all(v >= 0 for row in matrix for v in row)
    assert sum(map(sum, matrix)) != 30  # 30 test records: the total is noisy too
    report = json.loads(outcome.outputs["privacy_report.json"])
    assert len(report["evaluation"]["releases"]) == 1  # the plot reused the release
    assert report["epsilon_spent"] <= 3.0
    assert any(line.startswith("DP evaluation: test metrics released") for line in outcome.log)


def test_a_run_that_plans_no_evaluation_releases_no_metrics() -> None:
    pipeline = private_pipeline({"accountant": "rdp", "eval_releases": 0})
    outcome = run_pipeline(
        pipeline,
        {"blobs": idx_tree()},
        MemoryTree({}),
        trainer_factory=lambda *a: DPTrainer(*a, noise=SeededRandom(0)),
    )
    assert json.loads(outcome.outputs["metrics.json"])["metrics"] == {}
    report = json.loads(outcome.outputs["privacy_report.json"])
    assert report["evaluation"]["releases"] == []
    assert report["epsilon_spent"] == report["epsilon_training"]


def test_clamping_noisy_cells_does_not_bias_small_test_sets() -> None:
    """A 10-class confusion matrix of 180 records with noise std 14 per cell: clamping each
    cell at 0 before dividing (as an earlier version did) drags 0.89 down to about 0.2;
    the released accuracy comes from two noisy counts and stays unbiased."""
    generator = torch.Generator().manual_seed(0)
    true = torch.zeros(10, 10, dtype=torch.float64)
    true.diagonal().fill_(16.0)  # 160 of 180 right
    true[0, 1:] = 20.0 / 9
    accuracies = []
    for _ in range(200):
        noisy = {
            "confusion": (true + 14 * torch.randn(10, 10, generator=generator)).reshape(-1),
            "outcome": torch.tensor([160.0, 20.0]) + 14 * torch.randn(2, generator=generator),
        }
        accuracies.append(metrics_from(noisy, ["accuracy", "recall"], "classification")["accuracy"])
    assert abs(sum(accuracies) / len(accuracies) - 160 / 180) < 0.03
