"""Private evaluation: metrics released through a Gaussian mechanism on sufficient statistics.

A private run's metrics are functions of sums over the evaluated records. Each record adds
a bounded vector to those sums, so the vector of sums has a known L2 sensitivity Δ under
adding or removing one record; the room adds N(0, (zΔ)²) to every coordinate and computes
the metrics from the noisy sums only (post-processing). The release is one Gaussian
mechanism with noise multiplier z = std / Δ: one step at sample rate 1 for the RDP and PRV
accountants, composed with training in the run's history.

Statistics are grouped; a group's coordinates are in units of its ``bound`` and a record's
contribution to the group has L2 norm at most ``norm`` in those units:

* classification: a histogram where each record adds 1 to exactly one cell, the confusion
  matrix (K×K) when precision, recall, F1 or the matrix is asked for, else (correct,
  incorrect) for accuracy, else the record count; ``norm`` 1;
* ``loss``: the sum of per-record losses clipped to [0, ``eval_clip``] (bound ``eval_clip``);
* segmentation ``dice`` / ``jaccard``: (sum of per-record scores in [0, 1], records scored),
  ``norm`` √2; ``hausdorff`` / ``hausdorff95`` the same with the per-record distance
  clipped to [0, ``eval_clip``] pixels and divided by it; regression ``mse`` / ``mae``:
  sums of per-record errors clipped to [0, ``eval_clip``], with the record count.

Denominators are noisy counts, never the true number of records. A metric that is not such
a sum (r2: moments of unbounded targets) is refused under privacy.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from sealroom.errors import ConfigError, PrivacyError
from sealroom.privacy.noise import NoiseSource
from sealroom.train.metrics import binary_masks, class_predictions

CONFUSION_METRICS = {"precision", "recall", "f1", "macro_f1", "confusion_matrix"}
PRIVATE_METRICS = {
    "classification": {"loss", "accuracy", *CONFUSION_METRICS},
    "segmentation": {"loss", "dice", "jaccard", "iou", "hausdorff", "hausdorff95"},
    "regression": {"loss", "mse", "rmse", "mae"},
}


@dataclass(frozen=True)
class StatisticGroup:
    """Sums released together: coordinates in units of ``bound``, per-record L2 ≤ ``norm``."""

    bound: float
    norm: float


@dataclass
class EvaluationRelease:
    """One Gaussian release of a split's metrics: what the report states and ε is charged."""

    split: str
    metrics: list[str]
    noise_multiplier: float  # noise std / L2 sensitivity
    sensitivity: float  # L2 sensitivity of the normalised statistics vector
    groups: dict[str, StatisticGroup]
    epsilon_share: float = 0.0  # ε this release added to the run's total (set by the trainer)

    @property
    def noise_std(self) -> float:
        return self.noise_multiplier * self.sensitivity

    def as_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "metrics": list(self.metrics),
            "mechanism": "Gaussian on sufficient statistics (one step at sample rate 1)",
            "noise_multiplier": self.noise_multiplier,
            "l2_sensitivity": self.sensitivity,
            "statistics": {
                name: {"bound": g.bound, "noise_std": self.noise_std * g.bound}
                for name, g in self.groups.items()
            },
            "epsilon_share": self.epsilon_share,
        }


def check_private_metrics(task: str, names: Sequence[str], where: str = "metrics") -> None:
    """Refuse, before any training, metrics a private run cannot release as noisy sums."""
    allowed = PRIVATE_METRICS.get(task, {"loss"})
    for i, name in enumerate(names):
        if name not in allowed:
            raise ConfigError(
                f"{where}[{i}]: {name!r} is not released under privacy (not a bounded "
                f"sum over records); use {', '.join(sorted(allowed))}"
            )


def statistic_groups(task: str, names: Sequence[str], clip: float) -> dict[str, StatisticGroup]:
    """The groups of sums the named metrics need (see the module docstring)."""
    wanted = set(names)
    groups: dict[str, StatisticGroup] = {}
    if task == "classification":
        # Accuracy from two noisy counts, not from the trace of K² noisy cells: its noise
        # does not grow with the number of classes.
        if "accuracy" in wanted:
            groups["outcome"] = StatisticGroup(1.0, 1.0)
        if wanted & CONFUSION_METRICS:
            groups["confusion"] = StatisticGroup(1.0, 1.0)
        if not groups:
            groups["count"] = StatisticGroup(1.0, 1.0)
    elif wanted & {"loss", "mse", "rmse", "mae"}:
        groups["count"] = StatisticGroup(1.0, 1.0)  # the denominator of the means
    if "loss" in wanted:
        groups["loss"] = StatisticGroup(clip, 1.0)
    if task == "segmentation":
        for name in sorted(wanted & (PER_RECORD_SCORES | {"iou"})):
            groups[_score_name(name)] = StatisticGroup(1.0, math.sqrt(2.0))
    if task == "regression":
        if wanted & {"mse", "rmse"}:
            groups["squared_error"] = StatisticGroup(clip, 1.0)
        if "mae" in wanted:
            groups["absolute_error"] = StatisticGroup(clip, 1.0)
    return groups


def _score_name(name: str) -> str:
    return "jaccard" if name == "iou" else name


def sensitivity(groups: dict[str, StatisticGroup]) -> float:
    """L2 sensitivity of all groups together, each in units of its bound."""
    return math.sqrt(sum(g.norm**2 for g in groups.values()))


PER_RECORD_SCORES = {"dice", "jaccard", "hausdorff", "hausdorff95"}


def _per_record_scores(
    output: Tensor, target: Tensor, name: str, threshold: float, clip: float
) -> Tensor:
    """Per-record mean over channels of a MONAI score, in [0, 1] (distances: clipped and
    divided by ``clip``); NaN where no channel is defined."""
    import warnings

    from monai.metrics import compute_dice, compute_hausdorff_distance, compute_iou

    pred, true = binary_masks(output.detach().float().cpu(), target.cpu(), threshold)
    if name in ("dice", "jaccard"):
        score = compute_dice if name == "dice" else compute_iou
        values = score(pred, true, include_background=True).double()
    else:
        both = (pred.flatten(2).sum(-1) > 0) & (true.flatten(2).sum(-1) > 0)
        with warnings.catch_warnings():  # MONAI warns on each empty mask, undefined here
            warnings.simplefilter("ignore")
            percentile = 95.0 if name == "hausdorff95" else None
            values = compute_hausdorff_distance(
                pred, true, include_background=True, percentile=percentile
            ).double()
        values = torch.where(both & torch.isfinite(values), values, torch.nan)
        values = values.clamp(0.0, clip) / clip
    return values.nanmean(dim=1) if values.dim() > 1 else values


def sufficient_statistics(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    per_record_loss: nn.Module | None,
    groups: dict[str, StatisticGroup],
    task: str,
    threshold: float,
    clip: float,
) -> dict[str, Tensor]:
    """The exact sums of each group over ``batches`` (float64, on the CPU); never released."""
    sums: dict[str, Tensor] = {}

    def add(name: str, value: Tensor) -> None:
        value = value.detach().double().cpu()
        sums[name] = value if name not in sums else sums[name] + value

    training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for x, y in batches:
                output = model(x)
                _accumulate(output, y, groups, task, threshold, clip, per_record_loss, add)
    finally:
        model.train(training)
    return sums


def _accumulate(
    output: Tensor,
    y: Tensor,
    groups: dict[str, StatisticGroup],
    task: str,
    threshold: float,
    clip: float,
    per_record_loss: nn.Module | None,
    add: Any,
) -> None:
    n = len(output)
    if "count" in groups:
        add("count", torch.tensor([float(n)]))
    if "confusion" in groups or "outcome" in groups:
        k = 2 if output.dim() == 1 or output.shape[1] == 1 else output.shape[1]
        pred = class_predictions(output, threshold)
        true = y.reshape(n).long()
        if n and (int(true.min()) < 0 or int(true.max()) >= k):
            raise PrivacyError(
                f"evaluation: a label is outside 0..{k - 1} (the model has {k} outputs)"
            )
        if "confusion" in groups:
            add("confusion", torch.bincount(true * k + pred, minlength=k * k))
        if "outcome" in groups:
            correct = (pred == true).sum()
            add("outcome", torch.stack([correct, n - correct]))
    if "loss" in groups:
        assert per_record_loss is not None
        add(
            "loss",
            per_record_loss(output, y).double().clamp(0.0, clip).nan_to_num(clip).sum()[None],
        )
    for name in sorted(PER_RECORD_SCORES):
        if name in groups:
            scores = _per_record_scores(output, y, name, threshold, clip)
            valid = torch.isfinite(scores)
            add(name, torch.stack([scores[valid].clamp(0, 1).sum(), valid.sum().double()]))
    if "squared_error" in groups or "absolute_error" in groups:
        err = (output.double().reshape(n, -1) - y.double().reshape(n, -1)).nan_to_num(clip)
        if "squared_error" in groups:
            add("squared_error", (err * err).mean(1).clamp(0, clip).sum()[None])
        if "absolute_error" in groups:
            add("absolute_error", err.abs().mean(1).clamp(0, clip).sum()[None])


def add_noise(
    sums: dict[str, Tensor], groups: dict[str, StatisticGroup], std: float, noise: NoiseSource
) -> dict[str, Tensor]:
    """Each coordinate plus N(0, (std x its group's bound)²): the only way a private sum leaves."""
    noisy: dict[str, Tensor] = {}
    for name, group in groups.items():
        exact = sums.get(name, torch.zeros(1, dtype=torch.float64))
        draw = noise.normal(exact.numel(), std * group.bound).double().reshape(exact.shape)
        noisy[name] = exact + draw
    return noisy


def metrics_from(
    noisy: dict[str, Tensor], names: Sequence[str], task: str, clip: float = 1.0
) -> dict[str, Any]:
    """The named metrics, computed from noisy sums only (post-processing).

    Ratios use the noisy sums as they are (unbiased) and are clamped only at the end:
    clamping each noisy cell at 0 first would inflate every denominator by about 0.4 σ
    per cell, which on a small test set swamps the metric.
    """
    matrix = None
    if "confusion" in noisy:
        cells = noisy["confusion"]
        k = math.isqrt(cells.numel())
        matrix = cells.reshape(k, k)
    if "outcome" in noisy:
        correct, wrong = (float(v) for v in noisy["outcome"])
        count = correct + wrong
    elif matrix is not None:
        count = float(matrix.sum())
    elif "count" in noisy:
        count = float(noisy["count"].sum())
    else:
        count = 0.0
    denominator = max(count, 1.0)
    out: dict[str, Any] = {}
    for name in names:
        if name == "loss":
            out[name] = max(float(noisy["loss"].sum()), 0.0) / denominator
        elif name == "accuracy":
            out[name] = _unit(correct / denominator)
        elif name in CONFUSION_METRICS:
            assert matrix is not None
            out[name] = _from_confusion(matrix, name)
        elif name in ("dice", "jaccard", "iou"):
            total, scored = (float(v) for v in noisy[_score_name(name)])
            out[name] = _unit(total / max(scored, 1.0))
        elif name in ("hausdorff", "hausdorff95"):
            total, scored = (float(v) for v in noisy[name])
            out[name] = clip * _unit(total / max(scored, 1.0))
        elif name in ("mse", "rmse"):
            mse = max(float(noisy["squared_error"].sum()), 0.0) / denominator
            out[name] = math.sqrt(mse) if name == "rmse" else mse
        elif name == "mae":
            out[name] = max(float(noisy["absolute_error"].sum()), 0.0) / denominator
    return out


def _unit(value: float) -> float:
    return min(1.0, max(0.0, value))


def _from_confusion(matrix: Tensor, name: str) -> Any:
    if name == "confusion_matrix":
        return [[max(round(float(v)), 0) for v in row] for row in matrix]
    tp, predicted, support = matrix.diagonal(), matrix.sum(dim=0), matrix.sum(dim=1)
    num, den = {
        "precision": (tp, predicted),
        "recall": (tp, support),
    }.get(name, (2 * tp, predicted + support))
    ratio = torch.where(den > 0, num / den.clamp(min=1e-300), torch.zeros_like(num))
    return _unit(float(ratio.clamp(0.0, 1.0).mean()))


def release_evaluation(
    model: nn.Module,
    batches: Iterable[tuple[Tensor, Tensor]],
    *,
    split: str,
    names: Sequence[str],
    task: str,
    threshold: float,
    clip: float,
    noise_multiplier: float,
    noise: NoiseSource,
    per_record_loss: nn.Module | None,
) -> tuple[dict[str, Any], EvaluationRelease]:
    """Noisy metrics of ``model`` on ``batches`` and the release record the accountant charges."""
    check_private_metrics(task, names)
    groups = statistic_groups(task, names, clip)
    delta = sensitivity(groups)
    sums = sufficient_statistics(model, batches, per_record_loss, groups, task, threshold, clip)
    noisy = add_noise(sums, groups, noise_multiplier * delta, noise)
    del sums
    metrics = metrics_from(noisy, names, task, clip)
    release = EvaluationRelease(split, list(names), noise_multiplier, delta, groups)
    return metrics, release
