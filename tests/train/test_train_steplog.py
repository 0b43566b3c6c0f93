"""Per-step log lines: `Epoch: 1 | Step: 50 | Train loss: 0.342 | Dice score: 0.823`."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch
from monai.metrics import compute_dice
from torch import Tensor

from sealroom.data import MemoryTree, load_dataset, split_dataset
from sealroom.pipeline.schema import Pipeline
from sealroom.train.loop import Trainer
from sealroom.train.metrics import binary_masks
from sealroom.train.models import build_model
from sealroom.train.steplog import StepLog, batch_score
from tests.train.tiny import classification_pipeline, hdf5_tree, idx_tree

NUMBER = r"\d+\.\d{3}"


def fit(pipeline: Pipeline, tree: MemoryTree, factory: type[Trainer] = Trainer) -> Trainer:
    splits = split_dataset(load_dataset(pipeline.datasets[0], tree), pipeline.split)
    torch.manual_seed(pipeline.train.seed)
    trainer = factory(pipeline, build_model(pipeline.model, MemoryTree({})), splits)
    trainer.fit()
    return trainer


def step_lines(trainer: Trainer) -> list[str]:
    return [line for line in trainer.lines if "| Step: " in line]


def test_classification_logs_loss_and_accuracy_every_log_every_steps() -> None:
    trainer = fit(classification_pipeline(log_every=2, epochs=2), idx_tree())
    lines = step_lines(trainer)
    assert [int(re.findall(r"Step: (\d+)", line)[0]) for line in lines] == [2, 4, 6, 8, 10, 12]
    pattern = rf"Epoch: (1|2) \| Step: \d+ \| Train loss: {NUMBER} \| Accuracy: {NUMBER}"
    assert all(re.fullmatch(pattern, line) for line in lines), lines
    assert lines[2].startswith("Epoch: 1 ") and lines[3].startswith("Epoch: 2 ")
    # Sample counts first, then each epoch's step lines before its epoch line.
    assert trainer.lines[:3] == [
        "Training samples: 90",
        "Validation samples: 30",
        "Test samples: 30",
    ]
    assert trainer.lines[3:7] == [*lines[:3], trainer.lines[6]]
    assert trainer.lines[6].startswith("Epoch: 1 | Train loss: ")
    assert " | Val loss: " in trainer.lines[6]


def segmentation_pipeline() -> Pipeline:
    conv = {"type": "conv2d", "params": {"in_channels": 1, "out_channels": 1, "kernel_size": 1}}
    doc: dict[str, Any] = {
        "name": "seg",
        "datasets": [{"id": "scans", "source": {"format": "hdf5", "file": "data.h5"}}],
        "split": {"train": 0.5, "val": 0.25, "test": 0.25},
        "model": {"model": {"format": "declarative", "layers": [conv]}, "input_shape": [1, 8, 8]},
        "loss": {"components": {"bce": {"name": "bce_with_logits"}}, "expression": "bce"},
        "train": {
            "optimizer": {"name": "adam", "params": {"lr": 0.1}},
            "epochs": 3,
            "batch_size": 4,
            "device": "cpu",
            "log_every": 1,
        },
        "eval": {"task": "segmentation", "metrics": ["loss", "dice"]},
    }
    return Pipeline.model_validate(doc)


def test_segmentation_logs_a_dice_score() -> None:
    x = np.random.default_rng(0).random((24, 1, 8, 8)).astype(np.float32)
    trainer = fit(segmentation_pipeline(), hdf5_tree(x, (x > 0.5).astype(np.float32)))
    lines = step_lines(trainer)
    assert len(lines) == 9  # 12 training samples, batch 4, three epochs, every step
    pattern = rf"Epoch: \d \| Step: \d \| Train loss: {NUMBER} \| Dice score: ({NUMBER})"
    scores = [float(re.fullmatch(pattern, line)[1]) for line in lines]  # type: ignore[index]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert np.mean(scores[-3:]) > np.mean(scores[:3])  # the 1x1 convolution learns


class LossOnly(Trainer):
    """A trainer that does not expose its outputs (as a wrapper's train_step may not)."""

    def train_step(self, x: Tensor, y: Tensor) -> Tensor:
        loss = super().train_step(x, y)
        self.last_output = None
        return loss


def test_a_trainer_without_outputs_logs_the_loss_only() -> None:
    trainer = fit(classification_pipeline(log_every=3, epochs=1), idx_tree(), LossOnly)
    assert [line.split(" | Train loss: ")[0] for line in step_lines(trainer)] == [
        "Epoch: 1 | Step: 3",
        "Epoch: 1 | Step: 6",
    ]
    assert all(re.fullmatch(rf".*Train loss: {NUMBER}", line) for line in step_lines(trainer))


def test_loss_and_accuracy_are_averaged_over_the_window_then_reset() -> None:
    log = StepLog("classification", 0.5, torch.device("cpu"))
    right, wrong = torch.tensor([[2.0, 0.0]] * 4), torch.tensor([[0.0, 2.0]] * 4)
    log.update(torch.tensor(1.0), right, torch.zeros(4, dtype=torch.long))
    log.update(torch.tensor(3.0), wrong, torch.zeros(4, dtype=torch.long))
    assert log.line(1, 2) == "Epoch: 1 | Step: 2 | Train loss: 2.000 | Accuracy: 0.500"
    log.update(torch.tensor(0.5), right, torch.zeros(4, dtype=torch.long))
    assert log.line(2, 3) == "Epoch: 2 | Step: 3 | Train loss: 0.500 | Accuracy: 1.000"


def test_regression_lines_have_no_score() -> None:
    log = StepLog("regression", 0.5, torch.device("cpu"))
    log.update(torch.tensor(0.25), torch.zeros(3, 1), torch.zeros(3))
    assert log.line(1, 1) == "Epoch: 1 | Step: 1 | Train loss: 0.250"


@pytest.mark.parametrize("channels", [1, 3])
def test_batch_dice_matches_monai_and_skips_empty_truths(channels: int) -> None:
    gen = torch.Generator().manual_seed(channels)
    logits = torch.randn(6, channels, 8, 8, generator=gen)
    if channels == 1:
        target = (torch.rand(6, 1, 8, 8, generator=gen) > 0.6).float()
        target[0] = 0  # empty truth: undefined, skipped
    else:
        target = torch.randint(0, channels, (6, 1, 8, 8), generator=gen).float()
        target[0] = 0  # classes 1 and 2 absent from the first sample
    total, count = (float(v) for v in batch_score(logits, target, "segmentation", 0.5))
    pred, true = binary_masks(logits, target, 0.5)
    expected = compute_dice(pred, true, include_background=True, ignore_empty=True)
    finite = expected[torch.isfinite(expected)]
    assert count == finite.numel() < 6 * channels
    assert total / count == pytest.approx(float(finite.mean()), abs=1e-6)
