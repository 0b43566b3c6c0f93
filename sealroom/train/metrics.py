"""Evaluation metrics a config may name (``METRICS``), accumulated on tensors batch by batch.

Each metric is a small class: ``update(output, target, loss)`` per batch, ``compute()``
once. Classification metrics share one confusion matrix built with ``bincount``;
precision, recall and F1 are macro averages over the classes that occur in targets or
predictions (scikit-learn's default, with ``zero_division=0``). Segmentation metrics use MONAI.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from sealroom.errors import ConfigError, TrainingError
from sealroom.pipeline.registry import Registry
from sealroom.train.metric_names import METRIC_NAMES

MetricValue = float | list[list[int]] | None


@dataclass(frozen=True)
class MetricContext:
    """What every metric needs to know besides the batches."""

    task: str
    threshold: float = 0.5


class Metric:
    """Accumulates one metric over batches of model outputs (logits) and targets."""

    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "segmentation", "regression"})
    higher_is_better: ClassVar[bool] = True  # early stopping's default direction
    scalar: ClassVar[bool] = True  # one number: drawn as a curve per epoch
    # Cheap enough to update on every training batch without a device sync (train curves).
    per_batch: ClassVar[bool] = True

    def __init__(self, ctx: MetricContext) -> None:
        self.ctx = ctx

    def update(self, output: Tensor, target: Tensor, loss: Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> MetricValue:
        raise NotImplementedError


# A new metric's name goes in metric_names.py too (compose checks names there, torch-free).
METRICS: Registry[type[Metric]] = Registry("metric", declared=METRIC_NAMES)


def _finite(value: float) -> float | None:
    """JSON has no NaN or infinity: an undefined metric is reported as null."""
    return value if math.isfinite(value) else None


@METRICS.register("loss")
class Loss(Metric):
    """Mean loss per sample (batch means weighted by batch size)."""

    higher_is_better = False

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__(ctx)
        self.total = torch.zeros((), dtype=torch.float64)
        self.count = 0

    def update(self, output: Tensor, target: Tensor, loss: Tensor) -> None:
        # Summed where the loss lives; read back once, in compute.
        self.total = self.total.to(loss.device) + loss.detach().double() * len(output)
        self.count += len(output)

    def compute(self) -> MetricValue:
        return _finite(float(self.total) / self.count) if self.count else None


# --------------------------------------------------------------------------- classification


def class_predictions(output: Tensor, threshold: float) -> Tensor:
    """Predicted class per sample: argmax of logits, or sigmoid > threshold for one logit."""
    if output.dim() == 1 or output.shape[1] == 1:
        return (torch.sigmoid(output.reshape(len(output))) > threshold).long()
    return output.argmax(dim=1)


class ConfusionBased(Metric):
    tasks = frozenset({"classification"})

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__(ctx)
        self.counts: Tensor | None = None  # on the batches' device until compute
        self.outside: Tensor | None = None  # labels outside the model's classes
        self.n_classes = 0

    def update(self, output: Tensor, target: Tensor, loss: Tensor) -> None:
        n_classes = 2 if output.dim() == 1 or output.shape[1] == 1 else output.shape[1]
        pred = class_predictions(output.detach(), self.ctx.threshold)
        true = target.reshape(len(output)).long()
        # No host sync per batch: out-of-range labels are counted here, refused in compute.
        outside = ((true < 0) | (true >= n_classes)).sum()
        true = true.clamp(0, n_classes - 1)
        counts = torch.bincount(true * n_classes + pred, minlength=n_classes * n_classes)
        counts = counts.reshape(n_classes, n_classes)
        self.n_classes = n_classes
        self.counts = counts if self.counts is None else self.counts + counts
        self.outside = outside if self.outside is None else self.outside + outside

    @property
    def matrix(self) -> Tensor | None:
        """The confusion matrix on the CPU (rows: true class); refuses labels out of range."""
        if self.counts is None:
            return None
        if self.outside is not None and int(self.outside) > 0:
            raise TrainingError(
                f"evaluation: a label is outside 0..{self.n_classes - 1} (the model has "
                f"{self.n_classes} outputs)"
            )
        return self.counts.cpu()

    def per_class(self) -> tuple[Tensor, Tensor, Tensor]:
        """True positives, predicted counts and true counts per class (float64)."""
        matrix = self.matrix
        assert matrix is not None
        m = matrix.double()
        return m.diagonal(), m.sum(dim=0), m.sum(dim=1)


def _macro(num: Tensor, den: Tensor, present: Tensor) -> float:
    """Mean of ``num / den`` over the classes present in targets or predictions (0 where den is 0).

    Like scikit-learn's default labels: a class the model has but that neither occurs nor
    is predicted in the evaluated split does not drag the average down.
    """
    ratio = torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))
    return float(ratio[present].mean()) if bool(present.any()) else 0.0


@METRICS.register("accuracy")
class Accuracy(ConfusionBased):
    """Share of samples whose predicted class is the true one."""

    def compute(self) -> MetricValue:
        if self.counts is None:
            return None
        tp, _, support = self.per_class()
        return float(tp.sum() / support.sum())


@METRICS.register("precision")
class Precision(ConfusionBased):
    """Macro-averaged precision."""

    def compute(self) -> MetricValue:
        if self.counts is None:
            return None
        tp, predicted, support = self.per_class()
        return _macro(tp, predicted, predicted + support > 0)


@METRICS.register("recall")
class Recall(ConfusionBased):
    """Macro-averaged recall."""

    def compute(self) -> MetricValue:
        if self.counts is None:
            return None
        tp, predicted, support = self.per_class()
        return _macro(tp, support, predicted + support > 0)


@METRICS.register("f1")
class F1(ConfusionBased):
    """Macro-averaged F1: the mean over classes of 2·TP / (predicted + true)."""

    def compute(self) -> MetricValue:
        if self.counts is None:
            return None
        tp, predicted, support = self.per_class()
        return _macro(2 * tp, predicted + support, predicted + support > 0)


METRICS.add("macro_f1", F1)


@METRICS.register("confusion_matrix")
class ConfusionMatrix(ConfusionBased):
    """Rows: true class, columns: predicted class."""

    scalar = False

    def compute(self) -> MetricValue:
        matrix = self.matrix
        return None if matrix is None else [[int(v) for v in row] for row in matrix]


# --------------------------------------------------------------------------- segmentation


def binary_masks(output: Tensor, target: Tensor, threshold: float) -> tuple[Tensor, Tensor]:
    """One-hot (or single-channel binary) predicted and true masks ``[B, C, ...]``."""
    if target.dim() == output.dim() - 1:
        target = target.unsqueeze(1)
    if output.shape[1] == 1:
        return (torch.sigmoid(output) > threshold).float(), (target > 0.5).float()
    n = output.shape[1]
    pred = nn.functional.one_hot(output.argmax(dim=1), n).movedim(-1, 1).float()
    true = nn.functional.one_hot(target[:, 0].long().clamp(0, n - 1), n).movedim(-1, 1).float()
    return pred, true


class PerSample(Metric):
    """Mean over samples and channels of a MONAI per-sample score, ignoring undefined values."""

    tasks = frozenset({"segmentation"})
    per_batch = False  # MONAI on the CPU: a validation curve only

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__(ctx)
        self.total = 0.0
        self.count = 0

    def score(self, pred: Tensor, true: Tensor) -> Tensor:
        raise NotImplementedError

    def update(self, output: Tensor, target: Tensor, loss: Tensor) -> None:
        pred, true = binary_masks(output.detach().float().cpu(), target.cpu(), self.ctx.threshold)
        values = self.score(pred, true).double()
        values = values[torch.isfinite(values)]
        self.total += float(values.sum())
        self.count += values.numel()

    def compute(self) -> MetricValue:
        return self.total / self.count if self.count else None


@METRICS.register("dice")
class Dice(PerSample):
    def score(self, pred: Tensor, true: Tensor) -> Tensor:
        from monai.metrics import compute_dice

        return compute_dice(pred, true, include_background=True)


@METRICS.register("jaccard")
class Jaccard(PerSample):
    def score(self, pred: Tensor, true: Tensor) -> Tensor:
        from monai.metrics import compute_iou

        return compute_iou(pred, true, include_background=True)


METRICS.add("iou", Jaccard)


@METRICS.register("hausdorff")
class Hausdorff(PerSample):
    """Hausdorff distance in pixels; samples where a mask is empty are skipped."""

    percentile: ClassVar[float | None] = None
    higher_is_better = False

    def score(self, pred: Tensor, true: Tensor) -> Tensor:
        from monai.metrics import compute_hausdorff_distance

        both = (pred.flatten(2).sum(-1) > 0) & (true.flatten(2).sum(-1) > 0)
        if not bool(both.any()):
            return torch.empty(0)
        import warnings

        with warnings.catch_warnings():  # MONAI warns on each empty mask, which we skip anyway
            warnings.simplefilter("ignore")
            values = compute_hausdorff_distance(
                pred, true, include_background=True, percentile=self.percentile
            )
        return values[both]


@METRICS.register("hausdorff95")
class Hausdorff95(Hausdorff):
    percentile = 95.0


# --------------------------------------------------------------------------- regression


class Regression(Metric):
    tasks = frozenset({"regression"})
    higher_is_better = False  # errors; R2 says otherwise

    def __init__(self, ctx: MetricContext) -> None:
        super().__init__(ctx)
        self.n = 0
        self.sq = torch.zeros((), dtype=torch.float64)
        self.abs = torch.zeros((), dtype=torch.float64)
        self.sum_y = torch.zeros((), dtype=torch.float64)
        self.sum_y2 = torch.zeros((), dtype=torch.float64)

    def update(self, output: Tensor, target: Tensor, loss: Tensor) -> None:
        pred = output.detach().double().reshape(-1)
        true = target.double().reshape(-1)
        if pred.shape != true.shape:
            raise TrainingError(
                f"evaluation: {pred.numel()} predictions for {true.numel()} regression targets"
            )
        err = pred - true
        self.n += true.numel()
        # Summed on the batches' device; compute reads the sums back once.
        self.sq = self.sq.to(err.device) + (err * err).sum()
        self.abs = self.abs.to(err.device) + err.abs().sum()
        self.sum_y = self.sum_y.to(err.device) + true.sum()
        self.sum_y2 = self.sum_y2.to(err.device) + (true * true).sum()


@METRICS.register("mse")
class MeanSquaredError(Regression):
    """Mean squared error over all target values."""

    def compute(self) -> MetricValue:
        return float(self.sq / self.n) if self.n else None


@METRICS.register("rmse")
class RootMeanSquaredError(Regression):
    """Square root of the mean squared error."""

    def compute(self) -> MetricValue:
        return math.sqrt(float(self.sq / self.n)) if self.n else None


@METRICS.register("mae")
class MeanAbsoluteError(Regression):
    """Mean absolute error over all target values."""

    def compute(self) -> MetricValue:
        return float(self.abs / self.n) if self.n else None


@METRICS.register("r2")
class R2(Regression):
    """Coefficient of determination, 1 − SS_res / SS_tot (undefined for constant targets)."""

    higher_is_better = True

    def compute(self) -> MetricValue:
        if not self.n:
            return None
        ss_tot = float(self.sum_y2 - self.sum_y * self.sum_y / self.n)
        return _finite(1.0 - float(self.sq) / ss_tot) if ss_tot > 0 else None


# --------------------------------------------------------------------------- evaluation


def build_metrics(names: Sequence[str], ctx: MetricContext) -> dict[str, Metric]:
    """The named metrics for ``ctx.task``; unknown names or a task mismatch are ConfigError."""
    metrics: dict[str, Metric] = {}
    for i, name in enumerate(names):
        cls = METRICS.get(name, where=f"eval.metrics[{i}]")
        if ctx.task not in cls.tasks:
            raise ConfigError(
                f"eval.metrics[{i}]: {name!r} is not a {ctx.task} metric "
                f"(it applies to {', '.join(sorted(cls.tasks))})"
            )
        metrics[name] = cls(ctx)
    return metrics


def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    loss_fn: nn.Module,
    names: Sequence[str],
    ctx: MetricContext,
) -> dict[str, Any]:
    """Run ``model`` in eval mode over ``batches`` and compute the named metrics."""
    metrics = build_metrics(names, ctx)
    training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for x, y in batches:
                output = model(x)
                loss = loss_fn(output, y)
                for metric in metrics.values():
                    metric.update(output, y, loss)
    finally:
        model.train(training)
    return {name: metric.compute() for name, metric in metrics.items()}
