"""Class names and per-class results: what a classification report says about each class.

Names come from ``eval.class_names`` (checked against the model's outputs before training),
else from the data (an image folder's subfolders), else the class ids. Per-class precision,
recall, F1 and support are computed from a confusion matrix only (rows: true class), so under
privacy they are post-processing of the released noisy matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from sealroom.errors import ConfigError

CONFUSION_BASED = frozenset({"precision", "recall", "f1", "macro_f1", "confusion_matrix"})
# Each per-class field and the metrics that stand for it: a run reports (and a contract
# releases) a field only with one of them.
PER_CLASS_FIELDS = {
    "precision": ("precision",),
    "recall": ("recall",),
    "f1": ("f1", "macro_f1"),
    "support": ("confusion_matrix",),
}


def per_class_fields(metrics: Sequence[str]) -> set[str]:
    """The per-class fields the named metrics stand for."""
    return {f for f, needs in PER_CLASS_FIELDS.items() if set(needs) & set(metrics)}


def model_classes(model: nn.Module, sample: np.ndarray) -> int:
    """How many classes ``model`` predicts: its outputs for one all-zero record like ``sample``.

    Zeros, not a record: the count depends on the architecture only. Eval mode and no
    gradient, so neither weights, BatchNorm statistics nor random streams change.
    """
    x = torch.zeros((1, *sample.shape), dtype=torch.from_numpy(sample[:0]).dtype)
    device = next(iter(model.parameters()), torch.zeros(())).device
    training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            output = model(x.to(device))
    finally:
        model.train(training)
    return 2 if output.dim() == 1 or output.shape[1] == 1 else int(output.shape[1])


def check_class_names(names: Sequence[str] | None, n_classes: int) -> None:
    """Refuse ``eval.class_names`` whose length is not the model's number of classes."""
    if names is not None and len(names) != n_classes:
        raise ConfigError(
            f"eval.class_names: {len(names)} names for a model with {n_classes} classes "
            f"(outputs); give one name per class, in class-id order"
        )


def class_labels(
    configured: Sequence[str] | None, from_data: Sequence[str] | None, n_classes: int
) -> list[str]:
    """The label of each class id: configured names, the data's names, else ``"0"``, ``"1"``…"""
    for names in (configured, from_data):
        if names is not None and len(names) == n_classes:
            return [str(n) for n in names]
    return [str(i) for i in range(n_classes)]


def per_class(
    matrix: Sequence[Sequence[float]], labels: Sequence[str], fields: set[str] | None = None
) -> dict[str, Any]:
    """``{label: {precision, recall, f1, support}}`` from a confusion matrix (0 where undefined);
    ``fields`` keeps only those."""
    m = np.asarray(matrix, dtype=np.float64)
    tp, predicted, support = np.diag(m), m.sum(axis=0), m.sum(axis=1)
    report: dict[str, Any] = {}
    for i, label in enumerate(labels):
        precision = tp[i] / predicted[i] if predicted[i] > 0 else 0.0
        recall = tp[i] / support[i] if support[i] > 0 else 0.0
        both = predicted[i] + support[i]
        report[label] = {
            "precision": float(min(max(precision, 0.0), 1.0)),
            "recall": float(min(max(recall, 0.0), 1.0)),
            "f1": float(min(max(2 * tp[i] / both, 0.0), 1.0)) if both > 0 else 0.0,
            "support": round(float(max(support[i], 0.0))),
        }
        if fields is not None:
            report[label] = {k: v for k, v in report[label].items() if k in fields}
    return report


def wants_class_report(metrics: Sequence[str], exact: bool) -> bool:
    """Whether a run reports per-class results: a confusion-based metric was asked for, and
    under privacy (``exact`` False) the confusion matrix itself (the one noisy release of the
    per-class counts)."""
    return "confusion_matrix" in metrics if not exact else bool(CONFUSION_BASED & set(metrics))
