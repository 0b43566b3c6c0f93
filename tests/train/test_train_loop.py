"""Trainer: learns, is bit-for-bit deterministic for a seed, checkpoints, logs, and takes hooks."""

from __future__ import annotations

import numpy as np
import torch
from safetensors.torch import load
from torch.optim import SGD, Optimizer

from sealroom.data import MemoryTree, Splits, load_dataset, split_dataset
from sealroom.pipeline.schema import Pipeline, SplitConfig
from sealroom.train.loop import TensorBatches, Trainer, TrainEvent
from sealroom.train.models import build_model
from tests.train.tiny import classification_pipeline


def make_trainer(pipeline: Pipeline, trees: dict[str, MemoryTree], **kwargs) -> Trainer:
    splits = split_dataset(load_dataset(pipeline.datasets[0], trees["blobs"]), pipeline.split)
    torch.manual_seed(pipeline.train.seed)
    model = build_model(pipeline.model, MemoryTree({}))
    return Trainer(pipeline, model, splits, **kwargs)


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_training_lowers_the_loss_and_learns(tiny_pipeline, tiny_trees) -> None:
    trainer = make_trainer(tiny_pipeline, tiny_trees)
    result = trainer.fit()
    assert result.history[-1].train_loss < result.history[0].train_loss
    assert result.steps == 3 * 6  # 90 training samples, batch 16, three epochs
    assert trainer.evaluate("test", ["accuracy"])["accuracy"] >= 0.9


def test_same_seed_gives_bit_identical_weights_and_metrics(tiny_pipeline, tiny_trees) -> None:
    first, second = make_trainer(tiny_pipeline, tiny_trees), make_trainer(tiny_pipeline, tiny_trees)
    history = [first.fit().history, second.fit().history]
    assert [r.train_loss for r in history[0]] == [r.train_loss for r in history[1]]
    a, b = weights(first), weights(second)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert first.evaluate("test") == second.evaluate("test")


def test_another_seed_shuffles_differently(tiny_trees) -> None:
    a = make_trainer(classification_pipeline(seed=1), tiny_trees)
    b = make_trainer(classification_pipeline(seed=2), tiny_trees)
    a.fit()
    b.fit()
    assert not torch.equal(weights(a)["1.weight"], weights(b)["1.weight"])


def test_checkpoints_every_n_steps_as_safetensors(tiny_trees) -> None:
    written: dict[str, bytes] = {}
    trainer = make_trainer(
        classification_pipeline(checkpoint_every=4, epochs=1),
        tiny_trees,
        checkpoint_sink=written.__setitem__,
    )
    trainer.fit()
    assert sorted(written) == ["checkpoints/step-0000004.safetensors"]
    state = load(written["checkpoints/step-0000004.safetensors"])
    assert set(state) == set(trainer.model.state_dict())


def test_log_lines_and_events(tiny_pipeline, tiny_trees) -> None:
    events: list[TrainEvent] = []
    trainer = make_trainer(tiny_pipeline, tiny_trees, on_event=events.append)
    trainer.fit()
    assert trainer.lines[:3] == [
        "Training samples: 90",
        "Validation samples: 30",
        "Test samples: 30",
    ]
    assert trainer.lines[3].startswith("Epoch: 1 | Train loss: ")
    assert " | Val loss: " in trainer.lines[3]
    assert [e.epoch for e in events if e.kind == "epoch"] == [1, 2, 3]
    last = [e for e in events if e.kind == "batch"][-1]
    assert last.batch == last.batches == 6 and "train_loss" in last.values


def test_hooks_replace_optimizer_and_observe_steps(tiny_pipeline, tiny_trees) -> None:
    """The DP wrapper's pattern: override methods, no flags in the loop."""

    class Observed(Trainer):
        steps_seen = 0

        def make_optimizer(self) -> Optimizer:
            return SGD(self.model.parameters(), lr=0.1)

        def after_step(self) -> None:
            self.steps_seen += 1

    trainer = make_trainer(tiny_pipeline, tiny_trees)
    observed = Observed(tiny_pipeline, trainer.model, trainer.splits)
    observed.fit()
    assert isinstance(observed.optimizer, SGD)
    assert observed.steps_seen == observed.step == 18


def test_batches_cover_every_sample_once_per_epoch() -> None:
    x = torch.arange(10.0).unsqueeze(1)
    batches = TensorBatches(
        x, torch.arange(10), 4, shuffle=True, generator=torch.Generator().manual_seed(0)
    )
    assert len(batches) == 3
    seen = torch.cat([bx for bx, _ in batches]).squeeze(1)
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(by) for _, by in batches] == [4, 4, 2]


def test_empty_validation_split_logs_na(tiny_trees) -> None:
    pipeline = classification_pipeline(epochs=1).model_copy(
        update={"split": SplitConfig(train=0.8, val=0.0, test=0.2)}
    )
    trainer = make_trainer(pipeline, tiny_trees)
    result = trainer.fit()
    assert result.history[0].val_loss is None
    assert trainer.lines[3].endswith("Val loss: n/a")
    assert isinstance(trainer.splits, Splits) and np.asarray(trainer.splits.val.y).size == 0
