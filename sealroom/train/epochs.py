"""Per-epoch statistics: train curves from the training batches, early stopping, best weights.

Train curves are accumulated from each training batch's output (the model in training
mode, weights moving during the epoch, as Keras reports them): no second pass over the
training split, no host sync per batch. Validation curves come from ``Trainer.evaluate``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sealroom.pipeline.schema import EarlyStopping
from sealroom.train.metrics import METRICS, Metric, MetricContext, build_metrics

Curve = dict[str, float | None]


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's released statistics by metric; empty where the trainer releases none (DP)."""

    epoch: int
    train: Mapping[str, float | None]
    val: Mapping[str, float | None]
    seconds: float
    steps: int = 0  # optimisation steps so far

    @property
    def train_loss(self) -> float | None:
        return self.train.get("loss")

    @property
    def val_loss(self) -> float | None:
        return self.val.get("loss")

    def values(self) -> dict[str, float]:
        """The statistics a progress event may carry: ``train_loss``, ``val_accuracy``…"""
        pairs = [(f"train_{k}", v) for k, v in self.train.items()]
        pairs += [(f"val_{k}", v) for k, v in self.val.items()]
        return {k: v for k, v in pairs if v is not None}

    def line(self) -> str:
        fields = [f"Epoch: {self.epoch}"]
        if self.train_loss is None:
            fields.append(f"Step: {self.steps}")
        else:
            fields.append(f"Train loss: {self.train_loss:.4f}")
            if not self.val:
                fields.append("Val loss: n/a")
        for name, value in self.val.items():
            fields.append(f"Val {name}: {value:.4f}" if value is not None else f"Val {name}: n/a")
        return " | ".join(fields)


@dataclass
class TrainResult:
    history: list[EpochRecord]
    steps: int
    fit_seconds: float
    samples: dict[str, int]
    cpu_seconds: float = 0.0  # this process's CPU time in fit (all threads): robust to load
    best_epoch: int | None = None  # the best validation epoch (early stopping / checkpoint best)
    stopped_early: bool = False
    weights_epoch: int = 0  # the epoch whose weights were tested and exported


def scalar_metrics(names: Sequence[str]) -> list[str]:
    """The names that are one number per evaluation (drawn as curves), in order, once each."""
    return [n for n in dict.fromkeys(names) if n == "loss" or METRICS.get(n, where="").scalar]


def higher_is_better(name: str) -> bool:
    return METRICS.get(name, where="train.early_stopping.metric").higher_is_better


class TrainCurves:
    """Training-split metrics of one epoch, accumulated batch by batch (``per_batch`` metrics)."""

    def __init__(self, names: Sequence[str], ctx: MetricContext) -> None:
        wanted = [n for n in scalar_metrics(names) if n != "loss"]
        self.names = [n for n in wanted if METRICS.get(n, where="eval.metrics").per_batch]
        self.ctx = ctx
        self.metrics: dict[str, Metric] = {}
        self.reset()

    def reset(self) -> None:
        self.metrics = build_metrics(self.names, self.ctx)

    def update(self, output: Tensor | None, target: Tensor, loss: Tensor) -> None:
        if output is None:
            return
        for metric in self.metrics.values():
            metric.update(output, target, loss)

    def compute(self) -> Curve:
        values = {name: _number(metric.compute()) for name, metric in self.metrics.items()}
        self.reset()
        return values


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


class EpochMonitor:
    """Tracks the best validation epoch; says when early stopping should stop training.

    ``keep_weights`` copies the model's weights at each new best (``checkpoint: best``),
    so they can be restored before the test evaluation and the export.
    """

    def __init__(self, stopping: EarlyStopping | None, metric: str, keep_weights: bool) -> None:
        self.stopping = stopping
        self.metric = metric
        mode = stopping.mode if stopping is not None else None
        self.maximise = higher_is_better(metric) if mode is None else mode == "max"
        self.min_delta = stopping.min_delta if stopping is not None else 0.0
        self.keep_weights = keep_weights
        self.best_epoch: int | None = None
        self.best_value: float | None = None
        self.best_state: dict[str, Tensor] | None = None
        self.stale = 0  # epochs since the last improvement

    def improved(self, value: float) -> bool:
        if self.best_value is None:
            return True
        gain = value - self.best_value if self.maximise else self.best_value - value
        return gain > self.min_delta

    def observe(self, epoch: int, val: Mapping[str, float | None], model: nn.Module) -> bool:
        """Record epoch ``epoch``'s validation values; True when training should stop."""
        value = val.get(self.metric)
        if value is not None and self.improved(value):
            self.best_epoch, self.best_value, self.stale = epoch, value, 0
            if self.keep_weights:
                self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            self.stale += 1
        return self.stopping is not None and self.stale >= self.stopping.patience

    def restore(self, model: nn.Module) -> bool:
        """Load the best epoch's weights into ``model``; False when there are none to load."""
        if self.best_state is None:
            return False
        with torch.no_grad():
            model.load_state_dict(self.best_state)
        return True
